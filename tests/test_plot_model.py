"""plot_model: SVG and DOT diagrams, checked by parsing the SVG."""

import itertools
import shutil
import subprocess
import re
import xml.etree.ElementTree as ET

import jax.numpy as jnp
import pytest

import fnnet

NS = {"svg": "http://www.w3.org/2000/svg"}


def house_price_mlp():
    return fnnet.serial(fnnet.Dense(400), fnnet.Relu, fnnet.Dense(200), fnnet.Relu, fnnet.Dense(1))


def sentiment_model():
    return fnnet.serial(fnnet.Embedding(20000, 128, mask_zero=True), fnnet.LSTM(128), fnnet.Dense(2))


def branchy_model():
    return fnnet.serial(fnnet.Dense(4), fnnet.Residual(fnnet.Dense(4), fnnet.Relu), fnnet.FanOut(2),
                        fnnet.parallel(fnnet.serial(fnnet.Dense(3), fnnet.Tanh, fnnet.Dense(2)), fnnet.Dense(5)),
                        fnnet.FanInConcat(), fnnet.Dense(1))


def parse(svg_text):
    """Nodes as dicts (id, path, layer, lines, box) and edges as (from, to, path-d) from an SVG document."""
    root = ET.fromstring(svg_text)
    nodes = []
    for g in root.iterfind(".//svg:g[@class='node']", NS):
        rect = g.find("svg:rect", NS)
        box = tuple(float(rect.get(k)) for k in ("x", "y", "width", "height"))
        nodes.append({"id": g.get("id"), "path": g.get("data-path"), "layer": g.get("data-layer"),
                      "lines": [t.text for t in g.findall("svg:text", NS)], "box": box})
    edges = [(g.get("data-from"), g.get("data-to"), g.find("svg:path", NS).get("d"))
             for g in root.iterfind(".//svg:g[@class='edge']", NS)]
    clusters = [g.get("data-path") for g in root.iterfind(".//svg:g[@class='cluster']", NS)]
    return nodes, edges, clusters


def test_house_price_mlp_svg(tmp_path):
    path = tmp_path / "mlp.svg"
    text = fnnet.plot_model(house_price_mlp(), (-1, 78), path)
    assert path.read_text() == text
    nodes, edges, clusters = parse(text)
    assert [n["lines"] for n in nodes] == [
        ["Input", "(None, 78)"],
        ["Dense(400)", "(None, 400)", "31,600 params"],
        ["Relu", "(None, 400)", "0 params"],
        ["Dense(200)", "(None, 200)", "80,200 params"],
        ["Relu", "(None, 200)", "0 params"],
        ["Dense(1)", "(None, 1)", "201 params"],
    ]
    assert [n["path"] for n in nodes[1:]] == ["dense", "relu", "dense_1", "relu_1", "dense_2"]
    ids = [n["id"] for n in nodes]
    assert [(a, b) for a, b, _ in edges] == list(zip(ids, ids[1:]))
    assert clusters == []


def test_sentiment_model_svg(tmp_path):
    nodes, edges, _ = parse(fnnet.plot_model(sentiment_model(), (-1, 200), tmp_path / "sentiment.svg"))
    assert [n["layer"] for n in nodes] == ["Input", "Embedding(20000, 128, mask_zero=True)", "LSTM(128)", "Dense(2)"]
    assert [n["lines"][1] for n in nodes] == ["(None, 200)", "(None, 200, 128)", "(None, 128)", "(None, 2)"]
    assert [n["lines"][2] for n in nodes[1:]] == ["2,560,000 params", "131,584 params", "258 params"]
    assert len(edges) == 3


@pytest.mark.parametrize("model,shape", [
    (fnnet.serial(fnnet.Dense(4), fnnet.Relu, fnnet.Dense(1)), (-1, 7)),
    (fnnet.serial(fnnet.Embedding(50, 8), fnnet.LSTM(4), fnnet.Dropout(0.5), fnnet.Dense(2)), (-1, 6)),
    (fnnet.serial(fnnet.FanOut(2), fnnet.parallel(fnnet.Dense(2), fnnet.serial(fnnet.Dense(3), fnnet.Relu)),
                  fnnet.FanInConcat()), (-1, 4)),
], ids=["mlp", "sentiment", "branches"])
def test_one_node_per_summary_row(model, shape):
    nodes, _, _ = parse(fnnet.model_to_svg(model, shape))
    rows = fnnet.summary_rows(model, shape)
    assert [(n["path"], n["lines"][1]) for n in nodes[1:]] == [(r.path, fnnet.shape_str(r.output_shape)) for r in rows]


def test_branches_fan_out_and_join():
    nodes, edges, clusters = parse(fnnet.model_to_svg(branchy_model(), (-1, 6)))
    by_layer = {}
    for n in nodes:
        by_layer.setdefault(n["layer"], []).append(n)
    assert clusters == ["residual"]
    assert len(by_layer["FanOut(2)"]) == 2  # the residual's and the explicit one
    out_degree = {n["id"]: sum(1 for a, _, _ in edges if a == n["id"]) for n in nodes}
    in_degree = {n["id"]: sum(1 for _, b, _ in edges if b == n["id"]) for n in nodes}
    for fan_out in by_layer["FanOut(2)"]:
        assert out_degree[fan_out["id"]] == 2
    for join in by_layer["FanInSum"] + by_layer["FanInConcat"]:
        assert in_degree[join["id"]] == 2
    identity, = by_layer["Identity"]  # the residual's skip branch
    assert identity["path"] == "residual/parallel/identity"
    concat, = by_layer["FanInConcat"]
    assert concat["lines"][1] == "(None, 7)"
    # The explicit branches start side by side: same top, different columns.
    heads = [n for n in nodes if n["path"] in ("parallel/serial/dense", "parallel/dense")]
    assert heads[0]["box"][1] == heads[1]["box"][1] and heads[0]["box"][0] != heads[1]["box"][0]


def overlaps(a, b):
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    return ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah


def test_layout_boxes_do_not_overlap_and_arrows_join_boxes():
    nodes, edges, _ = parse(fnnet.model_to_svg(branchy_model(), (-1, 6)))
    for a, b in itertools.combinations(nodes, 2):
        assert not overlaps(a["box"], b["box"]), (a["path"], b["path"])
    boxes = {n["id"]: n["box"] for n in nodes}
    for src, dst, d in edges:
        numbers = [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", d)]
        x, y, w, h = boxes[src]
        assert numbers[:2] == pytest.approx([x + w / 2, y + h], abs=0.1)  # leaves the source's bottom
        x, y, w, h = boxes[dst]
        assert numbers[-1] == pytest.approx(y, abs=0.1)  # ends on the target's top
        assert boxes[dst][1] > boxes[src][1]  # data flows down


def test_labels_are_escaped():
    def odd(x):
        return jnp.tanh(x)

    # A layer's name is a plain word now; its description still shows a function's name, which can be anything.
    odd.__name__ = 'a<b & "c"'
    model = fnnet.serial(fnnet.Lambda(odd))
    nodes, _, _ = parse(fnnet.model_to_svg(model, (-1, 2)))
    assert nodes[1]["layer"] == 'Lambda(a<b & "c")'
    assert nodes[1]["lines"][0] == 'Lambda(a<b & "c")'
    assert 'label="Lambda(a<b & \\"c\\")' in fnnet.model_to_dot(model, (-1, 2))


def test_dot_text(tmp_path):
    path = tmp_path / "model.dot"
    text = fnnet.plot_model(branchy_model(), (-1, 6), path)
    assert path.read_text() == text
    assert text.startswith("digraph model {") and text.rstrip().endswith("}")
    nodes, edges, _ = parse(fnnet.model_to_svg(branchy_model(), (-1, 6)))
    assert len(re.findall(r"^\s*n\d+ \[label=", text, re.M)) == len(nodes)
    assert re.findall(r"^\s*(n\d+) -> (n\d+);", text, re.M) == [(a, b) for a, b, _ in edges]
    assert re.search(r'subgraph cluster_1 \{\s*label="residual \(Residual\)"', text)
    assert 'label="FanInConcat\\n(None, 7)\\n0 params"' in text


def test_unknown_suffix_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"\.svg or \.dot"):
        fnnet.plot_model(house_price_mlp(), (-1, 78), tmp_path / "model.png")
    assert not (tmp_path / "model.png").exists()


def test_shape_errors_name_the_layer():
    with pytest.raises(fnnet.LayerError, match=r"serial\[1\]/Dense\(2\)"):
        fnnet.plot_model(fnnet.serial(fnnet.Flatten, fnnet.Dense(2)), (-1, -1))


def test_dot_text_is_valid_graphviz(tmp_path):
    dot = shutil.which("dot")
    if dot is None:
        pytest.skip("Graphviz's dot is not installed (only needed to check the DOT output)")
    text = fnnet.model_to_dot(branchy_model(), (-1, 6))
    done = subprocess.run([dot, "-Tsvg"], input=text, capture_output=True, text=True, check=True)
    nodes = ET.fromstring(done.stdout).findall(".//svg:g[@class='node']", NS)
    assert len(nodes) == len(parse(fnnet.model_to_svg(branchy_model(), (-1, 6)))[0])


def test_graph_is_drawn_as_a_dag_with_a_shared_layer_drawn_once(tmp_path):
    a, b = fnnet.Input((3,), name="a"), fnnet.Input((3,), name="b")
    shared = fnnet.Dense(2)
    left, right = shared(a), shared(fnnet.Dense(3)(b))
    model = fnnet.Model([a, b], [fnnet.Add()([left, right]), fnnet.Dense(1, name="side")(right)])
    diagram = fnnet.model_diagram(model)
    ids = {n.path: n.id for n in diagram.nodes}
    assert sorted(ids) == ["a", "add", "b", "dense", "dense_1", "side"]
    into = lambda path: sorted(src for src, dst in diagram.edges if dst == ids[path])
    assert into("dense") == sorted([ids["a"], ids["dense_1"]])  # one box, an arrow per call
    assert into("dense_1") == [ids["b"]] and into("side") == [ids["dense"]]
    svg = ET.fromstring(fnnet.plot_model(model, path=tmp_path / "graph.svg"))
    ns = {"svg": "http://www.w3.org/2000/svg"}
    assert len(list(svg.iterfind(".//svg:g[@class='node']", ns))) == 6
    assert len(list(svg.iterfind(".//svg:g[@class='edge']", ns))) == len(diagram.edges)
    dot = fnnet.plot_model(model, path=tmp_path / "graph.dot")
    assert dot.count("->") == len(diagram.edges) and (tmp_path / "graph.dot").read_text() == dot
