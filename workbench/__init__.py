"""ddpm-workbench: train and sample DDPM diffusion models from a terminal."""

__version__ = "0.1.0"
