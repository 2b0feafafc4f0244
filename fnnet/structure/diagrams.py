"""Diagrams of a model: one box per layer, arrows for data flow, as SVG or Graphviz DOT.

The model is read through :func:`fnnet.walk` (shapes only, nothing computed), and every
combinator is expanded, as in :func:`fnnet.summary`. How the data flows through a
combinator's children is read from the recorded shapes: children that each take the
previous one's output (``serial``, and ``Residual``, a serial of fan-out, parallel
branches and a sum) are stacked top to bottom; children that each take one element of
a tuple of inputs (``parallel``) stand side by side; the children of any other
combinator (``Bidirectional``, ``Ensemble``, ``TimeDistributed``) all take its input and
are framed together, the frame naming the combinator and its output shape. A serial
nested in a serial is framed too (``Residual`` is). Every other layer is one box
showing its type, output shape and parameter count. The SVG is laid out here (no
Graphviz needed); the DOT text is for those who have Graphviz.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import NamedTuple
from xml.sax.saxutils import escape, quoteattr

from ..core import shape_str, walk
from .summary import count_params


class DiagramNode(NamedTuple):
    """One box: ``path`` is the layer's path in the model (``'residual/parallel/identity'``,
    as in :func:`fnnet.summary_rows`), ``lines`` its label lines."""

    id: str
    path: str
    layer: str
    output_shape: tuple
    params: int
    lines: tuple


class Diagram(NamedTuple):
    """Boxes, arrows ``(from_id, to_id)`` and the nesting used for layout (see :func:`model_diagram`)."""

    nodes: list
    edges: list
    tree: tuple


def _several(shape) -> bool:
    """A shape of several arrays: a tuple of shapes, such as ``((-1, 3), (-1, 4))``."""
    return isinstance(shape, tuple) and bool(shape) and all(isinstance(s, (tuple, list)) for s in shape)


def _feeds_in_sequence(node) -> bool:
    """Each child takes the previous child's output: the first the input, the last gives the output."""
    shape = node.input_shape
    for child in node.children:
        if child.input_shape != shape:
            return False
        shape = child.output_shape
    return shape == node.output_shape


def _feeds_side_by_side(node) -> bool:
    """Child ``i`` takes element ``i`` of a tuple of inputs; the outputs are the tuple of theirs."""
    inputs, children = node.input_shape, node.children
    return (_several(inputs) and len(inputs) == len(children)
            and all(child.input_shape == shape for child, shape in zip(children, inputs))
            and node.output_shape == tuple(child.output_shape for child in children))


def _endpoints(flow) -> list:
    """The box ids a flow comes from: an id, a tuple of flows (several outputs) or a list (one, merged)."""
    return [flow] if isinstance(flow, str) else [e for f in flow for e in _endpoints(f)]


class _Drawing:
    def __init__(self):
        self.nodes, self.edges = [], []

    def box(self, path, layer_name, out_shape, params, lines, inputs):
        node = DiagramNode(f"n{len(self.nodes)}", path, layer_name, out_shape, params, tuple(lines))
        self.nodes.append(node)
        self.edges += [(src, node.id) for src in _endpoints(inputs)]
        return node.id

    def draw(self, node, flow, prefix, in_sequence):
        """Draw ``node`` fed by ``flow``; returns (flow out, layout tree).

        ``in_sequence``: the parent feeds its children one after another (so a nested
        sequence is a block of its own, worth a frame).
        """
        name = node.key or node.layer.name
        path = f"{prefix}/{name}" if prefix else name
        label = f"{name} ({node.layer.description})"
        if not node.children:
            count = count_params(node.params) + count_params(node.state)
            lines = (node.layer.description, shape_str(node.output_shape), f"{count:,} params")
            box = self.box(path, node.layer.description, node.output_shape, count, lines, flow)
            return box, ("node", box)
        # The root's path is the model itself: its children's paths start at their own keys.
        child_prefix = path if node.depth > 0 else ""
        if _feeds_in_sequence(node):
            items = []
            for child in node.children:
                flow, item = self.draw(child, flow, child_prefix, True)
                items.append(item)
            frame = label if node.depth > 0 and in_sequence else None
            return flow, ("column", tuple(items), frame, path)
        if _feeds_side_by_side(node):
            n = len(node.children)
            flows = flow if isinstance(flow, tuple) and len(flow) == n else (flow,) * n
            outs = [self.draw(child, f, child_prefix, False) for child, f in zip(node.children, flows)]
            return tuple(o[0] for o in outs), ("row", tuple(o[1] for o in outs))
        # Any other combinator: every child takes its input, and its output joins theirs.
        outs = [self.draw(child, flow, child_prefix, False) for child in node.children]
        out_flow = outs[0][0] if len(outs) == 1 else [o[0] for o in outs]
        frame = f"{label}: {shape_str(node.output_shape)}"
        return out_flow, ("column", (("row", tuple(o[1] for o in outs)),), frame, path)


def _draw_graph(drawing, root):
    """A graph (``fnnet.Model``): a box per input and per distinct layer, ranked by depth.

    A shared layer is one box with an arrow from every tensor it is called on.
    """
    model = root.layer
    names = list(model.input_names)
    shapes = [root.input_shape] if len(names) == 1 else list(root.input_shape)
    flows, rank = {}, {}
    for name, shape in zip(names, shapes):
        flows[name] = drawing.box(name, "Input", shape, 0, (f"Input {name}", shape_str(shape)), ())
        rank[name] = 0
    node_of = {child.key: child for child in root.children}
    feeds, last = {}, {}
    for i, (_, key, inputs) in enumerate(model.node_rows()):
        feeds.setdefault(key, []).extend(x for x in inputs if x not in feeds.get(key, []))
        last[key] = i

    def source(label):
        return label if label in names else label.split(":")[0].split("[")[0]

    # By each layer's last call, every tensor it takes exists, unless a layer feeds itself
    # (``d(d(x))``) or layers share in a cycle: those arrows are added once all are drawn.
    rows, late = {0: [("node", flows[n]) for n in names]}, []
    for key in sorted(feeds, key=last.get):
        srcs = list(dict.fromkeys(source(x) for x in feeds[key]))
        ready = [s for s in srcs if s in flows]
        rank[key] = 1 + max([rank[s] for s in ready] or [0])
        first_box = len(drawing.nodes)
        flow, item = drawing.draw(node_of[key], [flows[s] for s in ready], "", False)
        flows[key] = flow if isinstance(flow, str) else _endpoints(flow)
        late += [(s, drawing.nodes[first_box].id) for s in srcs if s not in ready]
        rows.setdefault(rank[key], []).append(item)
    drawing.edges += [(src, dst) for s, dst in late for src in _endpoints(flows[s])]
    items = tuple(("row", tuple(rows[r])) for r in sorted(rows))
    return ("column", items, None, "")


def model_diagram(model, input_shape=None) -> Diagram:
    """The boxes and arrows that :func:`plot_model` draws, as data.

    >>> import fnnet
    >>> d = fnnet.model_diagram(fnnet.serial(fnnet.Dense(4), fnnet.Relu), (None, 3))
    >>> [n.lines for n in d.nodes]
    [('Input', '(None, 3)'), ('Dense(4)', '(None, 4)', '16 params'), ('Relu', '(None, 4)', '0 params')]
    >>> [n.path for n in d.nodes], d.edges
    (['input', 'dense', 'relu'], [('n0', 'n1'), ('n1', 'n2')])
    """
    input_shape = _known_input_shape(model, input_shape)
    # One walk: init errors surface here, naming the layer's path.
    root = walk(model, input_shape)
    drawing = _Drawing()
    if hasattr(root.layer, "node_rows"):
        return Diagram(drawing.nodes, drawing.edges, _draw_graph(drawing, root))
    source = drawing.box("input", "Input", root.input_shape, 0, ("Input", shape_str(root.input_shape)), ())
    _, tree = drawing.draw(root, source, "", False)
    return Diagram(drawing.nodes, drawing.edges, ("column", (("node", source), tree), None, ""))


def _known_input_shape(model, input_shape):
    if input_shape is None:
        input_shape = getattr(model, "input_shape", None)
        if input_shape is None:
            raise ValueError("drawing this model needs input_shape (e.g. (None, 78)): it does not know its own; "
                             "build it from fnnet.Input to let it")
    return input_shape


# ------------------------------------------------------------------------------- DOT

def _dot_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def model_to_dot(model, input_shape=None) -> str:
    """The diagram as Graphviz DOT text (``dot -Tpng`` draws it; nothing here needs Graphviz).

    >>> import fnnet
    >>> print(fnnet.model_to_dot(fnnet.Dense(2), (-1, 3)))  # doctest: +NORMALIZE_WHITESPACE
    digraph model {
      rankdir=TB;
      node [shape=box, style="rounded,filled", fontname="monospace", fillcolor="#ffffff"];
      n0 [label="Input\\n(None, 3)", fillcolor="#e8e8e8"];
      n1 [label="Dense(2)\\n(None, 2)\\n8 params", fillcolor="#dbe9f6"];
      n0 -> n1;
    }
    """
    diagram = model_diagram(model, input_shape)
    by_id = {n.id: n for n in diagram.nodes}
    fills = _fills(diagram)
    lines = ["digraph model {", "  rankdir=TB;",
             '  node [shape=box, style="rounded,filled", fontname="monospace", fillcolor="#ffffff"];']
    clusters = [0]

    def emit(tree, indent):
        kind = tree[0]
        if kind == "node":
            node = by_id[tree[1]]
            label = "\\n".join(_dot_escape(line) for line in node.lines)
            fill = fills[node.id]
            lines.append(f'{indent}{node.id} [label="{label}"' + (f', fillcolor="{fill}"' if fill != "#ffffff" else "")
                         + "];")
        elif kind == "column" and tree[2]:
            clusters[0] += 1
            lines.append(f"{indent}subgraph cluster_{clusters[0]} {{")
            lines.append(f'{indent}  label="{_dot_escape(tree[2])}"; style=dashed;')
            for item in tree[1]:
                emit(item, indent + "  ")
            lines.append(f"{indent}}}")
        else:
            for item in tree[1]:
                emit(item, indent)

    emit(diagram.tree, "  ")
    lines += [f"  {a} -> {b};" for a, b in diagram.edges]
    lines.append("}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------- SVG

_CHAR_W, _LINE_H, _PAD = 7.2, 15, 8           # 12px monospace
_GAP_Y, _GAP_X, _CLUSTER_PAD, _CLUSTER_LABEL = 30, 24, 10, 16
_MIN_W = 120


def _fills(diagram) -> dict:
    """Box colours by role: the input grey, layers with params blue, splits and joins yellow."""
    outs = Counter(src for src, _ in diagram.edges)
    ins = Counter(dst for _, dst in diagram.edges)
    fills = {}
    for i, node in enumerate(diagram.nodes):
        if i == 0 or node.layer == "Input":  # model_diagram puts the (first) input first
            fills[node.id] = "#e8e8e8"
        elif node.params:
            fills[node.id] = "#dbe9f6"
        elif (outs[node.id] > 1 or ins[node.id] > 1):
            fills[node.id] = "#fbf0d0"
        else:
            fills[node.id] = "#ffffff"
    return fills


def _box_size(node):
    width = max(_MIN_W, max(len(line) for line in node.lines) * _CHAR_W + 2 * _PAD)
    return width, len(node.lines) * _LINE_H + 2 * _PAD


class _Layout:
    """Positions for every box (top-left corner) and cluster rectangle, by recursive stacking."""

    def __init__(self, by_id):
        self.by_id = by_id
        self.boxes, self.clusters = {}, []

    def size(self, tree):
        kind = tree[0]
        if kind == "node":
            return _box_size(self.by_id[tree[1]])
        sizes = [self.size(item) for item in tree[1]]
        if kind == "row":
            return sum(w for w, _ in sizes) + _GAP_X * (len(sizes) - 1), max(h for _, h in sizes)
        width, height = max(w for w, _ in sizes), sum(h for _, h in sizes) + _GAP_Y * (len(sizes) - 1)
        if tree[2]:
            width, height = width + 2 * _CLUSTER_PAD, height + 2 * _CLUSTER_PAD + _CLUSTER_LABEL
        return width, height

    def place(self, tree, x, y):
        kind = tree[0]
        width, height = self.size(tree)
        if kind == "node":
            self.boxes[tree[1]] = (x, y, width, height)
            return
        if kind == "row":
            for item in tree[1]:
                self.place(item, x, y)
                x += self.size(item)[0] + _GAP_X
            return
        if tree[2]:
            self.clusters.append((tree[2], tree[3], x, y, width, height))
            inner_y = y + _CLUSTER_PAD + _CLUSTER_LABEL
        else:
            inner_y = y
        for item in tree[1]:
            item_w, item_h = self.size(item)
            self.place(item, x + (width - item_w) / 2, inner_y)
            inner_y += item_h + _GAP_Y


def _edge_path(src, dst) -> str:
    # Down from the source, across in the gap just above the target, down into it: the
    # stacking layout keeps that gap and the space under a branch's last box empty.
    x1, y1 = src[0] + src[2] / 2, src[1] + src[3]
    x2, y2 = dst[0] + dst[2] / 2, dst[1]
    if abs(x1 - x2) < 0.5:
        return f"M{x1:.1f},{y1:.1f} V{y2:.1f}"
    mid = y2 - _GAP_Y / 2
    return f"M{x1:.1f},{y1:.1f} V{mid:.1f} H{x2:.1f} V{y2:.1f}"


def model_to_svg(model, input_shape=None) -> str:
    """The diagram as an SVG document: a ``<g class="node">`` per layer, ``<g class="edge">`` per arrow.

    Each node group carries ``data-path`` (its path in the model) and ``data-layer``; its
    ``<text>`` lines are the layer type, output shape and parameter count.

    >>> import fnnet, xml.etree.ElementTree as ET
    >>> svg = ET.fromstring(fnnet.model_to_svg(fnnet.serial(fnnet.Dense(4), fnnet.Relu), (-1, 3)))
    >>> ns = {'svg': 'http://www.w3.org/2000/svg'}
    >>> [g.get('data-layer') for g in svg.iterfind(".//svg:g[@class='node']", ns)]
    ['Input', 'Dense(4)', 'Relu']
    """
    diagram = model_diagram(model, input_shape)
    by_id = {n.id: n for n in diagram.nodes}
    fills = _fills(diagram)
    layout = _Layout(by_id)
    margin = 12
    width, height = layout.size(diagram.tree)
    layout.place(diagram.tree, margin, margin)
    width, height = width + 2 * margin, height + 2 * margin
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
           f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="monospace" font-size="12">',
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
           'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#444"/></marker></defs>',
           f'<rect width="{width:.0f}" height="{height:.0f}" fill="white"/>']
    for label, path, x, y, w, h in layout.clusters:
        out.append(f'<g class="cluster" data-path={quoteattr(path)}>'
                   f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="8" fill="#f7f7fb" '
                   f'stroke="#999" stroke-dasharray="5,3"/>'
                   f'<text x="{x + 8:.1f}" y="{y + 16:.1f}" font-style="italic" fill="#555">{escape(label)}</text></g>')
    for src, dst in diagram.edges:
        route = _edge_path(layout.boxes[src], layout.boxes[dst])
        out.append(f'<g class="edge" data-from="{src}" data-to="{dst}"><path d="{route}" '
                   'fill="none" stroke="#444" stroke-width="1.2" marker-end="url(#arrow)"/></g>')
    for node in diagram.nodes:
        x, y, w, h = layout.boxes[node.id]
        out.append(f'<g class="node" id="{node.id}" data-path={quoteattr(node.path)} '
                   f'data-layer={quoteattr(node.layer)}><title>{escape(node.path)}</title>'
                   f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="6" fill="{fills[node.id]}" '
                   'stroke="#333"/>')
        for i, line in enumerate(node.lines):
            weight = ' font-weight="bold"' if i == 0 else ""
            out.append(f'<text x="{x + w / 2:.1f}" y="{y + _PAD + (i + 0.8) * _LINE_H:.1f}" '
                       f'text-anchor="middle"{weight}>{escape(line)}</text>')
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out)


def plot_model(model, input_shape=None, path=None) -> str:
    """Draw ``model``: SVG when ``path`` ends in ``.svg`` (or is None), DOT text when it ends in ``.dot``.

    One box per layer with its type, output shape and parameter count; arrows follow the
    data through ``serial``, ``parallel``, fan-out/fan-in and residual branches (a
    ``Residual`` block is framed, as are ``Bidirectional``, ``Ensemble`` and
    ``TimeDistributed``, around the layers they hold). A graph (``fnnet.Model``) is drawn
    as its DAG: a box per input and per layer, ranked by depth, a shared layer drawn once
    with an arrow from each tensor it is called on; ``input_shape`` may then be left out.
    Returns the text it wrote.

    >>> import fnnet
    >>> block = fnnet.Residual(fnnet.Dense(3), fnnet.Relu)
    >>> svg = fnnet.plot_model(fnnet.serial(fnnet.Dense(3), block), (None, 2))
    >>> svg.count('class="node"'), svg.count('class="edge"'), svg.count('class="cluster"')
    (7, 7, 1)
    """
    suffix = Path(path).suffix.lower() if path is not None else ".svg"
    if suffix == ".svg":
        text = model_to_svg(model, input_shape)
    elif suffix in (".dot", ".gv"):
        text = model_to_dot(model, input_shape)
    else:
        raise ValueError(f"plot_model writes .svg or .dot files, got {str(path)!r}")
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    return text
