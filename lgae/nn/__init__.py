"""Equivariant building blocks (modules) on top of :mod:`lgae.so31`, plus shared featurisers and distances.

* :mod:`.invariants` — stable Gram matrices of jets and the canonical (jet rest) frame that keeps the float64
  model equivariant to ~1e-11 under boosts of rapidity 10;
* :mod:`.cg` — feature sets ``{Irrep: tensor}``, the CG paths up to ``maxdim``, the channel-wise CG product;
* :mod:`.layers` — Lorentzian-bell radial functions, per-irrep mixing, scalar MLPs and the Lorentz
  message-passing level with its general (CG tables) and maxdim-2 closed-form (Cartesian) paths;
* :mod:`.aggregate` — latent aggregations (soft Min-Max, reference Min-Max, Mix, sum/mean);
* :mod:`.features`, :mod:`.losses` — featurisers and reconstruction distances shared by every model.
"""

from .aggregate import HardMinMax, MixAggregation, SoftMinMax, SumAggregation, build_aggregation
from .cg import CGProduct, cg_paths, irreps_upto
from .invariants import CanonicalFrame, canonical_frame, gram_matrix, particle_mass2, psi
from .layers import (
    MLP,
    EdgeData,
    EquivariantLinear,
    LMPLevel,
    RadialBasis,
    fast_to_general,
    general_to_fast,
    minkowski,
    shared_radial_filters,
)

__all__ = [
    "CGProduct",
    "cg_paths",
    "irreps_upto",
    "CanonicalFrame",
    "canonical_frame",
    "gram_matrix",
    "particle_mass2",
    "psi",
    "MLP",
    "EdgeData",
    "EquivariantLinear",
    "LMPLevel",
    "RadialBasis",
    "fast_to_general",
    "general_to_fast",
    "minkowski",
    "shared_radial_filters",
    "SoftMinMax",
    "HardMinMax",
    "MixAggregation",
    "SumAggregation",
    "build_aggregation",
]
