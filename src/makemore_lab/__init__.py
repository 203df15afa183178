"""makemore-lab: training dynamics of Karpathy's makemore MLP, with Lightning and Hydra."""

__version__ = "0.1.0"
