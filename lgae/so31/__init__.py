"""The SO+(3,1) group core: irreps ``(k, n)``, Clebsch–Gordan tensors, group elements and representation
matrices, 4-vector <-> ``(1, 1)`` maps and Minkowski products. Pure functions of torch tensors (no
``nn.Module``), float64 by default, batched over leading dimensions.

Conventions: ``lgae.md`` §1–3 (``shared/design``); the module docstrings of :mod:`.clebsch` (CG normalisation
and basis), :mod:`.group` (group elements, ``D^(k,n)``) and :mod:`.minkowski` (the ``to_irrep`` basis) state
them exactly.
"""

from .clebsch import basis_matrix, canonical_index, cg, cg_outputs, invariant_form, su2_cg
from .group import (
    apply_lorentz,
    boost_matrix,
    lorentz_from_sl2c,
    lorentz_matrix,
    random_lorentz,
    rep_matrix,
    rep_matrix_sl2c,
    rotation_matrix,
    sl2c_matrix,
    spin_matrix,
)
from .irreps import Irrep, Irreps
from .minkowski import (
    from_irrep,
    mass,
    minkowski_dot,
    minkowski_norm2,
    pair_mass2,
    stable_dot,
    to_irrep,
    to_irrep_matrix,
)

__all__ = [
    "Irrep",
    "Irreps",
    "su2_cg",
    "basis_matrix",
    "canonical_index",
    "cg",
    "cg_outputs",
    "invariant_form",
    "rotation_matrix",
    "boost_matrix",
    "lorentz_matrix",
    "sl2c_matrix",
    "lorentz_from_sl2c",
    "spin_matrix",
    "rep_matrix",
    "rep_matrix_sl2c",
    "random_lorentz",
    "apply_lorentz",
    "to_irrep",
    "from_irrep",
    "to_irrep_matrix",
    "minkowski_dot",
    "minkowski_norm2",
    "mass",
    "stable_dot",
    "pair_mass2",
]
