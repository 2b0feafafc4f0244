"""The workloads of ``scripts/bench.py``, one module each, on shared harnesses.

- :mod:`.sizes`: :class:`Sizes`, the issue's sizes (:data:`FULL`) and tiny ones for tests;
- :mod:`.harness`: the Adam step, epoch loops and scans, peers' imports;
- :mod:`.matmul`, :mod:`.mlp` (W1), :mod:`.lstm` (W2), :mod:`.knn` (W3): each returns
  the :class:`benchlib.Contender` list of its workload for given sizes.
"""

from .sizes import FULL, TINY, Sizes  # noqa: F401
