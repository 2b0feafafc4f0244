"""A model's structure: summaries, diagrams and surgery, all from shapes alone.

- :mod:`fnnet.structure.eval_init`: what a model's ``init`` would produce, without
  computing any weights;
- :mod:`fnnet.structure.summary`: the Keras-style table of layers, shapes and parameters;
- :mod:`fnnet.structure.diagrams`: box-and-arrow diagrams as SVG or Graphviz DOT;
- :mod:`fnnet.structure.surgery`: insert, remove or replace a layer, keeping trained params.

The public names are flat on :mod:`fnnet` (``fnnet.summary``, ``fnnet.plot_model``).
"""
