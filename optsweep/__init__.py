"""optsweep: sweep and search gradient-descent optimizers on small vision models."""

__version__ = "0.1.0"
