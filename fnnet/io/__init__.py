"""Models and pytrees on disk: checkpoints, architecture specs and whole saved models.

- :mod:`fnnet.io.checkpoint`: any pytree of arrays in one file, bit-exact, no pickle;
- :mod:`fnnet.io.spec`: a model's architecture as JSON (``to_spec`` / ``from_spec``);
- :mod:`fnnet.io.saved_model`: architecture, weights and state in one directory;
- :mod:`fnnet.io.atomic`: the atomic-write and fsync helpers the others write through.

The public names are flat on :mod:`fnnet` (``fnnet.save_checkpoint``, ``fnnet.load_model``).
"""
