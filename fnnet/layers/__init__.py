"""Built-in layers; every name is re-exported from :mod:`fnnet`."""

from .activations import (ACTIVATIONS, FUNCTIONS, Activation, Elu, Exp, Gelu, Lambda, LeakyRelu, LogSoftmax, ReLU,
                          Relu, Selu, Sigmoid, Softmax, Softplus, Tanh, elementwise, get_activation)
from .conv import Conv, Conv1D, Conv1DTranspose, Conv2D, ConvTranspose, GeneralConv, GeneralConvTranspose
from .dense import Dense
from .dropout import Dropout
from .embedding import Embedding
from .merge import Add, Average, Concatenate, Dot, Maximum, Minimum, Multiply, Subtract
from .normalization import BatchNorm, LayerNorm
from .pooling import (AveragePooling1D, AveragePooling2D, AvgPool, GlobalAveragePooling1D,
                      GlobalAveragePooling2D, GlobalMaxPooling1D, GlobalMaxPooling2D, MaxPool,
                      MaxPooling1D, MaxPooling2D, SumPool)
from .recurrent import GRU, LSTM, SimpleRNN, reset_states
from .reshape import Flatten, Reshape
from .wrappers import Bidirectional, TimeDistributed

__all__ = [
    "Add",
    "Average",
    "Concatenate",
    "Dot",
    "Maximum",
    "Minimum",
    "Multiply",
    "Subtract",
    "ACTIVATIONS",
    "FUNCTIONS",
    "Activation",
    "AveragePooling1D",
    "AveragePooling2D",
    "AvgPool",
    "BatchNorm",
    "Bidirectional",
    "Conv",
    "Conv1D",
    "Conv1DTranspose",
    "Conv2D",
    "ConvTranspose",
    "Dense",
    "Dropout",
    "Elu",
    "Embedding",
    "Exp",
    "Flatten",
    "GRU",
    "Gelu",
    "GeneralConv",
    "GeneralConvTranspose",
    "GlobalAveragePooling1D",
    "GlobalAveragePooling2D",
    "GlobalMaxPooling1D",
    "GlobalMaxPooling2D",
    "LSTM",
    "Lambda",
    "LayerNorm",
    "LeakyRelu",
    "LogSoftmax",
    "MaxPool",
    "MaxPooling1D",
    "MaxPooling2D",
    "ReLU",
    "Relu",
    "Reshape",
    "Selu",
    "Sigmoid",
    "SimpleRNN",
    "Softmax",
    "Softplus",
    "SumPool",
    "Tanh",
    "TimeDistributed",
    "elementwise",
    "get_activation",
    "reset_states",
]
