"""Keras 3 interop: :func:`fnnet.from_keras` and :func:`fnnet.to_keras`.

- :mod:`fnnet.keras.importer`: Keras models (a ``.keras`` file or a live model) to fnnet;
- :mod:`fnnet.keras.exporter`: fnnet models back to Keras.

The machinery both share is private to this package: ``_reading`` (configs and HDF5
weights), ``_layers`` (one converter per Keras layer class) and ``_graph`` (chains and
branches of a functional model). The public names are flat on :mod:`fnnet`.
"""
