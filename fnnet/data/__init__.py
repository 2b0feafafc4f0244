"""Data utilities: splits, batches, folds, scaling, one-hot labels, tokenising and padding.

Everything here runs on the host with numpy (seeded ``numpy.random.Generator``\\s), takes
numpy/JAX arrays, pandas objects or pytrees of them, and keeps Keras's names and
semantics where Keras has the same tool (``Tokenizer``, ``pad_sequences``).

Modules: :mod:`.batching` (``train_val_split``, ``batches``, ``kfold_indices``,
``stratified_kfold``), :mod:`.preprocessing` (``StandardScaler``, ``one_hot``,
``Tokenizer``, ``pad_sequences``), :mod:`.features` (``add_weighted_sums``), :mod:`.tabular`
(``TabularPreprocessor``) and :mod:`.text` (text data set loaders). The first three are
re-exported here.
"""

from .batching import batches, kfold_indices, stratified_kfold, train_val_split
from .features import add_weighted_sums
from .preprocessing import DEFAULT_TOKEN_PATTERN, StandardScaler, Tokenizer, one_hot, pad_sequences
