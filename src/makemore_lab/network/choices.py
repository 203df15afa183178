"""The names a config chooses among: activations, running statistics, init schemes, biases.

Torch-free, so that `config/checks.py` refuses a misspelt one before torch and Lightning are
imported (seconds); the layers and the initialization map these same names to what they do.
"""

ACTIVATION_NAMES = ("tanh", "relu", "identity")  # model.activation (network/layers.py)
RUNNING_STATS = ("var", "std")  # model.bn.running: what BatchNorm1d tracks between batches
SCHEMES = ("kaiming", "randn")  # init.scheme and init.output_scheme
BIAS_INITS = ("zeros", "randn")  # init.bias
