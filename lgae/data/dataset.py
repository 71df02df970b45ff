"""A torch :class:`~torch.utils.data.Dataset` of jets from ROOT files in the style of JetNet / torchvision."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np
import torch

from .reader import Jets, load_jets

SPLITS = ("train", "val", "test", "all")
_SPLIT_ALIASES = {"valid": "val", "validation": "val"}


def split_indices(
    n: int, fractions: Sequence[float] = (0.7, 0.15, 0.15), seed: int = 42
) -> dict[str, np.ndarray]:
    """Disjoint sorted index sets ``{"train", "val", "test", "all"}`` of ``n`` jets from a seeded permutation.

    ``fractions`` are (train, val, test) and must sum to at most 1 (the remainder is left out). The same
    ``n``, ``fractions`` and ``seed`` always give the same split.
    """
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or any(f < 0 for f in fractions) or sum(fractions) > 1 + 1e-9:
        raise ValueError(
            f"split_fraction must be three non-negative numbers summing to at most 1, got {fractions}"
        )
    perm = np.random.default_rng(seed).permutation(n)
    n_train = int(round(fractions[0] * n))
    n_val = min(int(round(fractions[1] * n)), n - n_train)
    n_test = min(int(round(fractions[2] * n)), n - n_train - n_val)
    if abs(sum(fractions) - 1) < 1e-9:  # a full split uses every jet despite rounding
        n_test = n - n_train - n_val
    bounds = np.cumsum([0, n_train, n_val, n_test])
    out = {name: np.sort(perm[bounds[i] : bounds[i + 1]]) for i, name in enumerate(("train", "val", "test"))}
    out["all"] = np.arange(n)
    return out


class JetDataset(torch.utils.data.Dataset):
    """Jets from ROOT files as a torch dataset: ``dataset[i] -> (p4, mask)``.

    Parameters
    ----------
    paths : str, path or list
        ROOT file(s), glob(s) or directories (see :func:`lgae.data.load_jets`).
    split : {"train", "val", "test", "all"}
        Which part of a seeded random split to expose (``"valid"`` is accepted as in JetNet).
    split_fraction : (float, float, float)
        Fractions of (train, val, test).
    seed : int
        Seed of the split permutation.
    n_particles : int
        Particle slots per jet (leading by pT, zero-padded).
    transform : callable, optional
        Applied to each item as ``transform(p4, mask) -> x`` (see :mod:`lgae.data.transforms`); the item is
        then ``(x, mask)``. Equivariant models must get raw 4-momenta (at most :class:`MomentumScale`).
    config : path or dict, optional
        The data config (branch names, selection, ...; :mod:`lgae.data.format`).
    cache : bool
        Keep each file's padded arrays as ``.npz`` (:mod:`lgae.data.cache`): later runs skip the ROOT read.
    cache_dir : path, optional
        Fallback cache directory when the source directory is read-only.

    Attributes
    ----------
    jets : Jets
        The jets of this split (with labels and jet-level arrays).
    indices : ndarray
        Their positions among all jets read.

    Examples
    --------
    >>> ds = JetDataset("qcd.root", split="train", n_particles=30)          # doctest: +SKIP
    >>> loader = torch.utils.data.DataLoader(ds, batch_size=256, shuffle=True)  # doctest: +SKIP
    >>> p4, mask = next(iter(loader))                                        # doctest: +SKIP
    """

    def __init__(
        self,
        paths,
        split: str = "train",
        split_fraction: Sequence[float] = (0.7, 0.15, 0.15),
        seed: int = 42,
        n_particles: int = 30,
        transform: Callable | None = None,
        config=None,
        cache: bool = True,
        cache_dir: str | os.PathLike | None = None,
    ):
        split = _SPLIT_ALIASES.get(split, split)
        if split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        all_jets = load_jets(paths, n_particles=n_particles, config=config, cache=cache, cache_dir=cache_dir)
        self.split = split
        self.indices = split_indices(len(all_jets), split_fraction, seed)[split]
        self.jets: Jets = all_jets if split == "all" else all_jets.subset(self.indices)
        self.transform = transform
        self._p4, self._mask = self.jets.to_torch()

    def __len__(self) -> int:
        return len(self.jets)

    def __getitem__(self, i):
        p4, mask = self._p4[i], self._mask[i]
        if self.transform is not None:
            p4 = self.transform(p4, mask)
        return p4, mask

    def numpy(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """``(p4, mask, label)`` of the whole split as numpy arrays (label None when the files carry none)."""
        return self.jets.p4, self.jets.mask, self.jets.label

    def __repr__(self) -> str:
        return f"JetDataset(split={self.split!r}, {self.jets!r})"
