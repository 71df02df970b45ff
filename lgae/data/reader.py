"""Reading jets from ROOT files into padded numpy arrays: :func:`load_jets` and the :class:`Jets` container.

Files are read chunk by chunk (``step_size`` entries at a time, see :mod:`lgae.data.format`) and each chunk is
turned into padded numpy arrays at once, so the memory used is that of the output plus one chunk, whatever the
file's size. Constituents are ordered by decreasing pT (ties keep file order), the leading ``n_particles``
kept and the rest of the slots zero-padded. Jet-level quantities come from the ``jet_*`` branches when the
file has them and are otherwise computed from *all* constituents (not only the kept ones) with :mod:`vector`.

Errors about the input are :class:`DataError` (a :class:`ValueError`) or :class:`FileNotFoundError` whose
message starts with the offending file; nothing is returned (and nothing cached) when one is raised.
"""

from __future__ import annotations

import glob
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from .expr import parse
from .format import JET_KEYS, LABEL_BRANCH, ONE_HOT_LABELS, PARTICLE_KEYS, load_reader_config

#: jets.jet keys computed for every file, in this order
JET_FIELDS = ("pt", "eta", "phi", "energy", "mass", "n_particles")
_GLOB_CHARS = set("*?[")


class DataError(ValueError):
    """An input file cannot be turned into jets; the message names the file and what is wrong."""


class DataWarning(UserWarning):
    """Jets were dropped while reading (no particles, non-finite momenta with ``on_nonfinite: drop``)."""


@dataclass
class Jets:
    """Jets as padded arrays.

    Attributes
    ----------
    p4 : ndarray, (N, n, 4) float64
        Constituent 4-momenta ``(E, px, py, pz)`` in the file's units (GeV), pT-ordered, zero-padded.
    mask : ndarray, (N, n) bool
        True for real particles.
    label : ndarray (N,) int64 or None
        Class index (see :mod:`lgae.data.format` for the mapping; -1 = none of the listed classes), None
        without labels.
    jet : dict of str -> ndarray (N,)
        Jet-level arrays: ``pt, eta, phi, energy, mass, n_particles`` (the total number of constituents,
        before the truncation to ``n``), plus ``observers`` and per-jet ``new_variables`` of the data config.
    part : dict of str -> ndarray (N, n)
        Per-particle ``new_variables``, ordered and padded like ``p4``.
    source : list of str
        The files the jets come from.
    entry, file_index : ndarray (N,) int64 or None
        Entry number of each jet in its file, and the index of that file in ``source``.
    label_names : list of str or None
        Name of each class index (the label branches), when known.
    stats : dict of str -> int
        ``read`` entries, jets dropped for ``nonfinite`` momenta, by the ``selection``, for being ``empty``.
    """

    p4: np.ndarray
    mask: np.ndarray
    label: np.ndarray | None = None
    jet: dict = field(default_factory=dict)
    part: dict = field(default_factory=dict)
    source: list = field(default_factory=list)
    entry: np.ndarray | None = None
    file_index: np.ndarray | None = None
    label_names: list | None = None
    stats: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.p4)

    @property
    def n_particles(self) -> int:
        """Number of particle slots per jet."""
        return self.p4.shape[1]

    def __repr__(self) -> str:
        labels = "no labels" if self.label is None else f"labels {sorted(set(self.label.tolist()))}"
        return f"Jets({len(self)} jets x {self.n_particles} particles, {labels}, {len(self.source)} file(s))"

    def subset(self, idx) -> Jets:
        """The jets picked by ``idx`` (integer indices, a slice or a boolean mask), as new :class:`Jets`."""
        if isinstance(idx, slice):
            pick = lambda a: a[idx]
        else:
            idx = np.asarray(idx)
            if idx.dtype != bool:
                idx = idx.astype(np.int64, copy=False)
            pick = lambda a: a[idx]
        return Jets(
            p4=pick(self.p4),
            mask=pick(self.mask),
            label=None if self.label is None else pick(self.label),
            jet={k: pick(v) for k, v in self.jet.items()},
            part={k: pick(v) for k, v in self.part.items()},
            source=list(self.source),
            entry=None if self.entry is None else pick(self.entry),
            file_index=None if self.file_index is None else pick(self.file_index),
            label_names=self.label_names,
            stats=dict(self.stats),
        )

    @staticmethod
    def concat(items: Sequence[Jets]) -> Jets:
        """Concatenate jets (same ``n_particles``); keeps the jet/particle arrays that all of them have.

        Labels are kept when every part has them (mixing labelled and unlabelled jets raises ``ValueError``);
        the ``source`` lists are joined and ``file_index`` renumbered accordingly. Parts without jets (a file
        whose selection kept nothing) add their files and ``stats`` but no arrays.
        """
        items = list(items)
        if not items:
            raise ValueError("Jets.concat needs at least one Jets")
        if len({j.n_particles for j in items}) > 1:
            raise ValueError(
                f"cannot concatenate jets with different n_particles {sorted({j.n_particles for j in items})}"
            )
        source, offsets, stats = [], [], {}
        for j in items:
            offsets.append(len(source))
            source.extend(j.source)
            for k, v in j.stats.items():
                stats[k] = stats.get(k, 0) + v
        filled = [(j, o) for j, o in zip(items, offsets) if len(j)] or [(items[0], 0)]
        parts = [j for j, _ in filled]
        has_label = [j.label is not None for j in parts]
        if any(has_label) and not all(has_label):
            raise ValueError("cannot concatenate labelled and unlabelled jets")
        names = {tuple(j.label_names) if j.label_names else None for j in parts}
        cat = lambda arrays: arrays[0] if len(arrays) == 1 else np.concatenate(arrays, axis=0)
        common = lambda dicts: [k for k in dicts[0] if all(k in d for d in dicts[1:])]
        optional = lambda arrays: None if any(a is None for a in arrays) else cat(arrays)
        return Jets(
            p4=cat([j.p4 for j in parts]),
            mask=cat([j.mask for j in parts]),
            label=optional([j.label for j in parts]),
            jet={k: cat([j.jet[k] for j in parts]) for k in common([j.jet for j in parts])},
            part={k: cat([j.part[k] for j in parts]) for k in common([j.part for j in parts])},
            source=source,
            entry=optional([j.entry for j in parts]),
            file_index=optional([None if j.file_index is None else j.file_index + o for j, o in filled]),
            label_names=list(next(iter(names))) if len(names) == 1 and None not in names else None,
            stats=stats,
        )

    @classmethod
    def empty(cls, n_particles: int) -> Jets:
        """No jets (for a file whose selection keeps nothing)."""
        return cls(
            p4=np.zeros((0, n_particles, 4)),
            mask=np.zeros((0, n_particles), dtype=bool),
            jet={k: np.zeros(0, dtype=np.int64 if k == "n_particles" else np.float64) for k in JET_FIELDS},
            entry=np.zeros(0, dtype=np.int64),
            file_index=np.zeros(0, dtype=np.int64),
        )

    def to_torch(self):
        """``(p4, mask)`` as torch tensors sharing memory with the arrays (float64, bool)."""
        import torch

        return torch.from_numpy(self.p4), torch.from_numpy(self.mask)


# ------------------------------------------------------------------------------------------------------------
# paths


def resolve_paths(paths) -> list[str]:
    """Expand a file, a directory (its ``*.root`` files), a glob, or a list of those into files (sorted).

    Raises :class:`FileNotFoundError` naming a missing path or a glob/directory that matches nothing.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out: list[str] = []
    for p in paths:
        p = os.fspath(p)
        if _GLOB_CHARS & set(p):
            matches = sorted(m for m in glob.glob(os.path.expanduser(p)) if os.path.isfile(m))
            if not matches:
                raise FileNotFoundError(f"{p}: the pattern matches no file")
            out.extend(matches)
        elif os.path.isdir(p):
            matches = sorted(glob.glob(os.path.join(p, "*.root")))
            if not matches:
                raise FileNotFoundError(f"{p}: the directory has no *.root file")
            out.extend(matches)
        elif os.path.isfile(os.path.expanduser(p)):
            out.append(os.path.expanduser(p))
        else:
            raise FileNotFoundError(f"{p}: no such file")
    if not out:
        raise FileNotFoundError("no input file given")
    return out


# ------------------------------------------------------------------------------------------------------------
# public entry point


def load_jets(
    paths,
    n_particles: int = 30,
    config=None,
    *,
    max_jets: int | None = None,
    cache: bool = False,
    cache_dir: str | os.PathLike | None = None,
) -> Jets:
    """Read jets from ROOT files into padded arrays.

    Parameters
    ----------
    paths : str, path, or list of them
        A ROOT file, a directory (its ``*.root`` files), a glob, or a list of those; read in sorted order.
    n_particles : int
        Particle slots per jet: the leading ``n_particles`` constituents by pT; shorter jets zero-padded.
    config : path, dict or None
        The data config (see :mod:`lgae.data.format`): branch names, tree, selection, new variables, entry
        range, labels, ``on_nonfinite``.
    max_jets : int, optional
        Stop after this many jets (after selection), in file order; later files are not opened.
    cache : bool
        Keep a ``.npz`` copy of each file's result (see :mod:`lgae.data.cache`) and use it on later calls.
    cache_dir : path, optional
        Where the cache goes when the source directory is not writable (default ``~/.cache/lgae``).

    Returns
    -------
    Jets

    Raises
    ------
    FileNotFoundError
        A path does not exist or a glob matches nothing.
    DataError
        The file is not a (complete) ROOT file, lacks a branch (the message lists those it has), holds several
        trees and none was chosen, has non-finite momenta (with ``on_nonfinite: fail``), or an expression
        fails on it.
    lgae._validate.ConfigError
        The data config is invalid.
    """
    if isinstance(n_particles, bool) or not isinstance(n_particles, (int, np.integer)) or n_particles < 1:
        raise ValueError(f"n_particles must be a positive integer, got {n_particles!r}")
    if max_jets is not None and (isinstance(max_jets, bool) or int(max_jets) != max_jets or max_jets < 1):
        raise ValueError(f"max_jets must be a positive integer or None, got {max_jets!r}")
    cfg = load_reader_config(config)
    files = resolve_paths(paths)
    parts = []
    remaining = max_jets
    for path in files:
        if cache:
            from .cache import cached_read

            jets = cached_read(path, int(n_particles), cfg, remaining, cache_dir)
        else:
            jets = read_file(path, int(n_particles), cfg, max_jets=remaining)
        _warn_drops(path, jets.stats)
        parts.append(jets)
        if remaining is not None:
            remaining -= len(jets)
            if remaining <= 0:
                break
    return Jets.concat(parts)


def _warn_drops(path: str, stats: Mapping) -> None:
    if stats.get("empty"):
        warnings.warn(f"{path}: dropped {stats['empty']} jet(s) with no particles", DataWarning, stacklevel=3)
    if stats.get("nonfinite"):
        warnings.warn(
            f"{path}: dropped {stats['nonfinite']} jet(s) with non-finite (NaN or inf) momenta "
            "(on_nonfinite: drop)",
            DataWarning,
            stacklevel=3,
        )


# ------------------------------------------------------------------------------------------------------------
# one file


def read_file(path: str, n_particles: int, cfg: Mapping, max_jets: int | None = None) -> Jets:
    """Read one ROOT file, uncached, with a validated config (:func:`lgae.data.format.load_reader_config`)."""
    import uproot

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    try:
        handle = uproot.open(path)
    except Exception as err:  # uproot raises many types for a non-ROOT or truncated file
        raise DataError(
            f"{path}: cannot open as a ROOT file ({type(err).__name__}: {err}); "
            "is it truncated or not a ROOT file?"
        ) from None
    with handle:
        expected, size = getattr(handle.file, "fEND", 0), os.path.getsize(path)
        if size < expected:
            raise DataError(f"{path}: the file is truncated ({size} bytes, its header says {expected})")
        tree, tree_name = _find_tree(handle, path, cfg["tree"])
        plan = _Plan(path, tree_name, tree, cfg)
        return plan.read(path, n_particles, max_jets)


def _find_tree(handle, path: str, name: str | None):
    try:
        classes = handle.classnames(cycle=False)
    except Exception as err:
        raise DataError(
            f"{path}: cannot list the file's contents ({type(err).__name__}: {err}); is it truncated?"
        ) from None
    trees = sorted(
        k for k, c in classes.items() if c in ("TTree", "ROOT::RNTuple", "ROOT::Experimental::RNTuple")
    )
    if name is None:
        if len(trees) == 1:
            name = trees[0]
        elif not trees:
            raise DataError(f"{path}: the file holds no TTree (it has: {_listing(classes)})")
        else:
            raise DataError(
                f"{path}: the file holds several trees ({', '.join(trees)}); choose one with "
                "'tree:' in the data config"
            )
    elif name not in trees:
        raise DataError(f"{path}: no tree {name!r} in the file (trees: {', '.join(trees) or 'none'})")
    try:
        return handle[name], name
    except Exception as err:
        raise DataError(
            f"{path}: cannot read tree {name!r} ({type(err).__name__}: {err}); is it truncated?"
        ) from None


def _listing(classes: Mapping) -> str:
    return ", ".join(f"{k} ({c})" for k, c in sorted(classes.items())) or "nothing"


class _Plan:
    """Which branches to read from one tree and how to turn each chunk into padded arrays."""

    def __init__(self, path: str, tree_name: str, tree, cfg: Mapping):
        self.cfg = cfg
        self.tree = tree
        self.where = f"{path}: tree {tree_name!r}"
        self.keys = _branch_keys(tree)  # exposed name -> uproot key
        br = cfg["branches"]
        self.part_names = [br[k] for k in PARTICLE_KEYS]
        for key in PARTICLE_KEYS:
            self._require(br[key], f"particle {key} (branches.{key})")
        # jet-level: read a branch when the file has it, else compute
        self.jet_branch = {k: br[k] for k in JET_KEYS if br[k] in self.keys}
        self.computed = {br[k]: k for k in JET_KEYS if br[k] not in self.keys}
        # labels
        labels = cfg["labels"]
        self.label_int, self.label_onehot, self.label_names = None, None, None
        if labels == "auto":
            if LABEL_BRANCH in self.keys:
                self.label_int = LABEL_BRANCH
            else:
                present = [(i, b) for i, b in enumerate(ONE_HOT_LABELS) if b in self.keys]
                if present:
                    self.label_onehot = present
                    self.label_names = [b.removeprefix("label_") for b in ONE_HOT_LABELS]
        elif isinstance(labels, str):
            self._require(labels, "labels")
            self.label_int = labels
        elif labels is not None:
            for b in labels:
                self._require(b, "labels")
            self.label_onehot = list(enumerate(labels))
            self.label_names = list(labels)
        for b in cfg["observers"]:
            self._require(b, "observers")
        # expressions
        self.new_vars = {name: parse(src) for name, src in cfg["new_variables"].items()}
        self.selection = parse(cfg["selection"]) if cfg["selection"] else None
        expr_names: set[str] = set()
        defined: set[str] = set(self.computed)
        exprs = [(f"new_variables.{name}", name, e) for name, e in self.new_vars.items()]
        exprs += [("the selection", None, self.selection)] if self.selection is not None else []
        for what, name, expr in exprs:
            for n in sorted(expr.names - defined):
                self._require(n, what)
                expr_names.add(n)
            defined.add(name)
        wanted = {*self.part_names, *self.jet_branch.values(), *cfg["observers"], *expr_names}
        wanted |= {self.label_int} if self.label_int else set()
        wanted |= {b for _, b in self.label_onehot or ()}
        self.wanted = sorted(wanted)

    def _require(self, name: str, purpose: str) -> None:
        if name not in self.keys:
            raise DataError(
                f"{self.where} has no branch {name!r} (needed for {purpose}); branches in the file: "
                f"{', '.join(sorted(self.keys)) or 'none'}"
            )

    def _iterate(self, start, stop, step):
        uproot_keys = {self.keys[n] for n in self.wanted}
        iterator = self.tree.iterate(
            filter_name=lambda k: k in uproot_keys,
            entry_start=start,
            entry_stop=stop,
            step_size=step,
            library="ak",
            report=True,
        )
        while True:
            try:
                chunk, report = next(iterator)
            except StopIteration:
                return
            except Exception as err:  # decompression / deserialisation failure: a damaged file
                raise DataError(
                    f"{self.where}: failed to read entries from {start or 0} ({type(err).__name__}: {err}); "
                    "is the file truncated or corrupt?"
                ) from None
            yield chunk, report.tree_entry_start

    def get(self, chunk, name):
        key = self.keys[name]
        return chunk[tuple(key.split("."))] if "." in key else chunk[key]

    def read(self, path: str, n: int, max_jets: int | None) -> Jets:
        num_entries = self.tree.num_entries
        start = min(self.cfg["entry_start"] or 0, num_entries)
        stop = num_entries if self.cfg["entry_stop"] is None else min(self.cfg["entry_stop"], num_entries)
        stats = {"read": 0, "nonfinite": 0, "selection": 0, "empty": 0}
        chunks: list[Jets] = []
        bad_entries: list[np.ndarray] = []
        kept = 0
        if stop > start:
            for chunk, first in self._iterate(start, stop, self.cfg["step_size"]):
                out = self._convert(chunk, first, n, stats, bad_entries)
                if out is not None:
                    chunks.append(out)
                    kept += len(out)
                    if max_jets is not None and kept >= max_jets:
                        break
        if bad_entries and self.cfg["on_nonfinite"] == "fail":
            bad = np.concatenate(bad_entries)
            shown = ", ".join(map(str, bad[:10].tolist())) + (", ..." if len(bad) > 10 else "")
            raise DataError(
                f"{self.where}: {len(bad)} jet(s) have non-finite (NaN or inf) particle momenta, at entries "
                f"{shown}; set 'on_nonfinite: drop' in the data config to drop them"
            )
        jets = Jets.concat(chunks) if chunks else Jets.empty(n)
        jets.source, jets.stats = [path], stats
        if max_jets is not None and len(jets) > max_jets:
            jets = jets.subset(slice(0, max_jets))
        return jets

    # -- one chunk -------------------------------------------------------------------------------------------
    def _convert(self, chunk, first: int, n: int, stats: dict, bad_entries: list) -> Jets | None:
        import awkward as ak

        n_jets = len(chunk)
        stats["read"] += n_jets
        entry = np.arange(first, first + n_jets, dtype=np.int64)
        jagged = [self.get(chunk, b) for b in self.part_names]
        counts = ak.to_numpy(ak.num(jagged[0], axis=1)).astype(np.int64)
        for name, arr in zip(self.part_names[1:], jagged[1:]):
            if not np.array_equal(ak.to_numpy(ak.num(arr, axis=1)), counts):
                raise DataError(
                    f"{self.where}: branches {self.part_names[0]!r} and {name!r} have different "
                    "numbers of particles per jet"
                )
        # flat float64 (E, px, py, pz) + one zero row that padded slots point to
        flat = np.zeros((int(counts.sum()) + 1, 4))
        for col, arr in zip((1, 2, 3, 0), jagged):
            flat[:-1, col] = ak.to_numpy(ak.flatten(arr, axis=1))
        bad = np.zeros(n_jets, dtype=bool)
        if not np.isfinite(flat.sum()):  # fast path: a finite total means every entry is finite
            finite = np.isfinite(flat[:-1]).all(axis=1)
            bad[np.repeat(np.arange(n_jets), counts)[~finite]] = True
            if self.cfg["on_nonfinite"] == "fail":
                bad_entries.append(entry[bad])
            else:
                stats["nonfinite"] += int(bad.sum())
        if bad_entries and self.cfg["on_nonfinite"] == "fail":
            return None  # the file will be rejected; keep scanning only to count the bad entries

        ns, jet = self._jet_quantities(chunk, flat, counts)
        part_vars: dict[str, np.ndarray] = {}
        for name, expr in self.new_vars.items():
            value = self._eval(expr, ns, f"new_variables.{name}")
            ns[name] = value
            kind, arr = _classify(value, n_jets, counts)
            if kind == "jet":
                jet[name] = arr
            elif kind == "part":
                part_vars[name] = arr
            else:
                raise DataError(
                    f"{self.where}: new_variables.{name} = {expr.source!r} gives neither one value "
                    f"per jet nor one per particle (type {arr})"
                )
        for b in self.cfg["observers"]:
            kind, jet[b] = _classify(ns[b], n_jets, counts)
            if kind != "jet":
                raise DataError(f"{self.where}: observer {b!r} is not a per-jet branch ({jet[b]})")
        keep = ~bad
        if self.selection is not None:
            sel = self._eval(self.selection, ns, "selection")
            kind, sel = _classify(sel, n_jets, counts)
            if kind != "jet":
                raise DataError(
                    f"{self.where}: the selection {self.selection.source!r} must give one value per "
                    "jet (reduce per-particle arrays with sum/max/min/num)"
                )
            sel = sel.astype(bool)
            stats["selection"] += int((keep & ~sel).sum())
            keep &= sel
        empty = keep & (counts == 0)
        stats["empty"] += int(empty.sum())
        keep &= counts > 0
        if not keep.any():
            return None

        label = self._labels(chunk)
        idx, mask = _leading_indices(flat[:-1, 1], flat[:-1, 2], counts, keep, n)
        return Jets(
            p4=flat[idx],
            mask=mask,
            label=None if label is None else label[keep],
            jet={k: v[keep] for k, v in jet.items()},
            part={name: np.append(values, 0.0)[idx] for name, values in part_vars.items()},
            entry=entry[keep],
            file_index=np.zeros(int(keep.sum()), dtype=np.int64),
            label_names=self.label_names if label is not None else None,
        )

    def _jet_quantities(self, chunk, flat, counts):
        """Namespace for expressions (read branches + computed jet branches) and the jets.jet dict."""
        ns = {name: self.get(chunk, name) for name in self.wanted}
        values: dict[str, np.ndarray] = {}
        for key, branch in self.jet_branch.items():
            values[key] = _to_numpy(ns[branch]).astype(np.int64 if key == "jet_nparticles" else np.float64)
        missing = [k for k in JET_KEYS if k not in values]
        if missing:
            computed = _jet_from_constituents(flat, counts)
            for key in missing:
                values[key] = computed[key]
        for branch, key in self.computed.items():
            ns[branch] = values[key]
        jet = {f: values[k] for f, k in zip(JET_FIELDS, JET_KEYS)}
        return ns, jet

    def _eval(self, expr, ns, what):
        try:
            return expr.evaluate(ns)
        except Exception as err:
            raise DataError(f"{self.where}: cannot evaluate {what} = {expr.source!r}: {err}") from None

    def _labels(self, chunk):
        if self.label_int is not None:
            return _to_numpy(self.get(chunk, self.label_int)).astype(np.int64)
        if self.label_onehot is not None:
            cols = np.stack(
                [_to_numpy(self.get(chunk, b)).astype(bool) for _, b in self.label_onehot], axis=1
            )
            classes = np.array([i for i, _ in self.label_onehot], dtype=np.int64)
            return np.where(cols.any(axis=1), classes[cols.argmax(axis=1)], -1)
        return None


def _branch_keys(tree) -> dict[str, str]:
    """Exposed branch name -> uproot key. RNTuple record fields ``part.px`` are exposed as ``part_px``."""
    keys = list(tree.keys())
    if hasattr(tree, "branches"):  # TTree
        return {k: k for k in keys}
    leaves = [k for k in keys if not any(o.startswith(k + ".") for o in keys)]
    return {k.replace(".", "_"): k for k in leaves}


def _to_numpy(arr) -> np.ndarray:
    import awkward as ak

    return ak.to_numpy(arr) if isinstance(arr, ak.Array) else np.asarray(arr)


def _classify(value, n_jets: int, counts: np.ndarray):
    """('jet', (N,) array) | ('part', flat float64 array) | ('bad', description) for an expression's value."""
    import awkward as ak

    if isinstance(value, ak.Array):
        if value.ndim == 1:
            return "jet", ak.to_numpy(value)
        if (
            value.ndim == 2
            and len(value) == n_jets
            and np.array_equal(ak.to_numpy(ak.num(value, axis=1)), counts)
        ):
            return "part", ak.to_numpy(ak.flatten(value, axis=1)).astype(np.float64)
        return "bad", str(value.type)
    value = np.asarray(value)
    if value.ndim == 0:
        return "jet", np.full(n_jets, value)
    if value.shape == (n_jets,):
        return "jet", value
    return "bad", f"array of shape {value.shape}"


def _jet_from_constituents(flat: np.ndarray, counts: np.ndarray) -> dict[str, np.ndarray]:
    """jet_pt, jet_eta, jet_phi, jet_energy, jet_mass, jet_nparticles from the sum of all constituents.

    ``flat`` is ``(M + 1, 4)``: the particles of all jets, then a zero row (every start index is valid).
    """
    import vector

    starts = np.zeros(len(counts), dtype=np.int64)
    np.cumsum(counts[:-1], out=starts[1:])
    sums = np.add.reduceat(flat, starts, axis=0) if len(counts) else np.zeros((0, 4))
    sums[counts == 0] = 0.0  # reduceat gives flat[start] for an empty segment
    total = {c: np.ascontiguousarray(sums[:, i]) for i, c in enumerate(("E", "px", "py", "pz"))}
    v = vector.array(total)
    with np.errstate(all="ignore"):
        return {
            "jet_pt": np.asarray(v.pt, dtype=np.float64),
            "jet_eta": np.nan_to_num(np.asarray(v.eta, dtype=np.float64)),
            "jet_phi": np.asarray(v.phi, dtype=np.float64),
            "jet_energy": total["E"],
            # m^2 < 0 only from rounding
            "jet_mass": np.sqrt(np.maximum(np.asarray(v.mass2, dtype=np.float64), 0.0)),
            "jet_nparticles": counts.copy(),
        }


def _leading_indices(px, py, counts, keep, n):
    """Flat indices ``(N_keep, n)`` of each kept jet's leading-n particles by pT, and the mask of real slots.

    Padded slots point at ``len(px)`` (the zero row appended to the flat arrays). Equal pTs keep file order.
    Jets with at most ``n`` particles only need a sort of their first ``n`` slots; the longer ones first keep
    their ``n`` leading particles (``np.partition``), so no sort ever runs over more than ``n`` columns.
    """
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    counts, starts = counts[keep], offsets[:-1][keep]
    pad = len(px)
    key = np.empty(pad + 1)  # -pT, and +inf for padding (sorts last)
    np.hypot(px, py, out=key[:-1])
    np.negative(key, out=key)
    key[-1] = np.inf
    width = min(n, int(counts.max()) if len(counts) else 0)
    src = _slots(starts, counts, width, pad)  # (N, width) flat indices of the first particles, in file order
    long = np.flatnonzero(counts > n)
    if long.size:  # replace those by the n leading particles, still in file order
        lsrc = _slots(starts[long], counts[long], int(counts[long].max()), pad)
        lkey = key[lsrc]
        kth = np.partition(lkey, n - 1, axis=1)[:, n - 1 : n]  # the n-th largest pT of each jet
        less, tie = lkey < kth, lkey == kth
        room = n - less.sum(axis=1)
        chosen = less | tie
        over = tie.sum(axis=1) > room  # equal pTs across the cut: keep the earliest in the file
        if over.any():
            chosen[over] = less[over] | (tie[over] & (np.cumsum(tie[over], axis=1) <= room[over, None]))
        src[long] = lsrc[chosen].reshape(-1, n)
    order = np.argsort(key[src], axis=1, kind="stable")
    idx = np.full((len(counts), n), pad, dtype=np.int64)
    idx[:, :width] = np.take(src, order + width * np.arange(len(counts))[:, None])
    return idx, idx != pad


def _slots(starts, counts, width, pad):
    """``(N, width)`` flat indices ``starts + j``, and ``pad`` where ``j >= counts``."""
    slot = np.arange(width)
    return np.where(slot < counts[:, None], starts[:, None] + slot, pad)


# ------------------------------------------------------------------------------------------------------------
# writing (tests, benchmarks, small conversions)


def write_jets_root(
    path, particles: Mapping, jets: Mapping | None = None, tree: str = "tree", prefix: str = "part"
) -> str:
    """Write jets as a weaver-style TTree: per-particle branches ``{prefix}_{name}`` sharing one counter.

    Parameters
    ----------
    particles : mapping of str -> jagged array
        e.g. ``{"px": ..., "py": ..., "pz": ..., "energy": ...}`` (awkward arrays or lists of lists).
    jets : mapping of str -> (N,) array, optional
        Per-jet branches written under their own names (``jet_pt``, ``label``, ...).
    """
    import awkward as ak
    import uproot

    data = {prefix: ak.zip({k: ak.Array(v) for k, v in particles.items()})}
    data.update({k: np.asarray(v) for k, v in (jets or {}).items()})
    with uproot.recreate(os.fspath(path)) as f:
        f.mktree(tree, data)
    return os.fspath(path)
