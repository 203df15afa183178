"""The network: hand-written layers, gains, initialization, the MLP, the SGD, sampling."""
