"""lgae: Lorentz-group equivariant autoencoders for anomaly detection on particle-physics jets."""

__version__ = "0.1.0"
