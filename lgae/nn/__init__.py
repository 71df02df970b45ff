"""Equivariant building blocks (modules) on top of :mod:`lgae.so31`, plus shared featurisers and distances."""
