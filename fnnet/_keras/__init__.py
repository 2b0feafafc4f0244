"""The machinery behind :func:`fnnet.from_keras` (private): reading, layer converters, graphs."""
