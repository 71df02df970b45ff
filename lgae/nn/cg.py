"""General Clebsch–Gordan machinery for equivariant features stored as a dict ``{Irrep: tensor}``.

A *feature set* is a dict mapping :class:`lgae.so31.Irrep` ``r`` to a complex tensor ``(..., tau, r.dim)`` of
canonical components (the basis of :func:`lgae.so31.to_irrep`); every irrep of a set has the same multiplicity
``tau`` when it enters a channel-wise product (LGN's "uuu" mode, ``lgae.md`` §2.2). CG tensors come from
:func:`lgae.so31.cg`, are computed once per module and stored as buffers; products are batched ``einsum``
contractions with a small static loop over the allowed paths ``(r1, r2) -> r``.
"""

from __future__ import annotations

from itertools import product

import torch
from torch import Tensor, nn

from lgae.so31 import Irrep, cg, cg_outputs

__all__ = ["irreps_upto", "cg_paths", "CGProduct", "cg_buffer_name"]

SCALAR = Irrep(0, 0)
VECTOR = Irrep(1, 1)


def irreps_upto(maxdim: int) -> list[Irrep]:
    """The true SO+(3,1) irreps ``(k, n)`` (``k + n`` even) with ``max(k, n) < maxdim``, sorted.

    ``maxdim=2`` gives ``[(0,0), (1,1)]``; ``maxdim=3`` adds ``(0,2), (2,0), (2,2)``. Spinors never arise from
    scalar and vector inputs (the selection rules keep ``k - n`` mod 2), so they are left out.
    """
    if maxdim < 1:
        raise ValueError(f"maxdim must be >= 1 (exclusive bound on k and n); got {maxdim}")
    return sorted(Irrep(k, n) for k in range(maxdim) for n in range(maxdim) if (k + n) % 2 == 0)


def cg_paths(irreps1, irreps2, maxdim: int) -> dict[Irrep, list[tuple[Irrep, Irrep]]]:
    """All product paths ``(r1, r2) -> r`` with ``max(k, n) < maxdim``, grouped by output irrep.

    Paths into each ``r`` are sorted by ``(r1, r2)``; this order fixes the layout of the mixing weights, which
    is how the maxdim-2 fast path reproduces the general one weight for weight.
    """
    out: dict[Irrep, list[tuple[Irrep, Irrep]]] = {}
    for r1, r2 in product(sorted(map(Irrep, irreps1)), sorted(map(Irrep, irreps2))):
        for r in cg_outputs(r1, r2, maxdim):
            if (r.k + r.n) % 2:
                continue
            out.setdefault(r, []).append((r1, r2))
    return {r: sorted(v) for r, v in sorted(out.items())}


def cg_buffer_name(r1: Irrep, r2: Irrep, r: Irrep) -> str:
    return f"cg_{r1.k}{r1.n}_{r2.k}{r2.n}_{r.k}{r.n}"


class CGProduct(nn.Module):
    """Channel-wise CG tensor product of two feature sets, truncated at ``maxdim``.

    ``forward(x, y)`` returns ``{r: [z_path for path in paths[r]]}``: for every allowed path ``(r1, r2) -> r``
    the tensor ``z[..., c, k] = sum_ab C[k, a, b] x[r1][..., c, a] y[r2][..., c, b]`` (see :meth:`forward` for
    the two modes). Paths whose input irreps are missing from ``x`` or ``y`` are skipped, so one module serves
    feature sets that do not (yet) hold every irrep.
    """

    def __init__(self, irreps1, irreps2, maxdim: int, dtype: torch.dtype = torch.float64):
        super().__init__()
        self.maxdim = maxdim
        self.paths = cg_paths(irreps1, irreps2, maxdim)
        for r, plist in self.paths.items():
            for r1, r2 in plist:
                self.register_buffer(
                    cg_buffer_name(r1, r2, r), cg(r1, r2, r).real.to(dtype), persistent=False
                )

    def coefficients(self, r1: Irrep, r2: Irrep, r: Irrep) -> Tensor:
        return getattr(self, cg_buffer_name(r1, r2, r))

    def forward(self, x: dict, y: dict, mode: str = "self") -> dict[Irrep, list[Tensor]]:
        """Products of every allowed path.

        ``mode="self"``: ``x[r]`` and ``y[r]`` are ``(..., tau, d)`` with equal leading dims (e.g. a node with
        itself). ``mode="message"``: ``x[r]`` is a node feature ``(B, N, tau, d1)`` (neighbour ``j``) and
        ``y[r]`` an edge feature ``(B, N, N, tau, d2)`` (``[b, i, j]``); the result ``(B, N, tau, d)`` is
        summed over ``j``.
        """
        if mode not in ("self", "message"):
            raise ValueError(f"mode must be 'self' or 'message'; got {mode!r}")
        out: dict[Irrep, list[Tensor]] = {}
        for r, plist in self.paths.items():
            zs = []
            for r1, r2 in plist:
                if r1 not in x or r2 not in y:
                    continue
                C = self.coefficients(r1, r2, r).to(x[r1].dtype)
                if mode == "self":
                    zs.append(torch.einsum("kab,...ca,...cb->...ck", C, x[r1], y[r2]))
                else:
                    u = torch.einsum("kab,zjca->zjckb", C, x[r1])  # contract the node side first (small)
                    zs.append(torch.einsum("zjckb,zijcb->zick", u, y[r2]))
            out[r] = zs
        return out
