"""A ``.npz`` cache of :func:`lgae.data.reader.read_file` results, one file per source file and reading setup.

The cache of ``DIR/qcd.root`` is ``DIR/.qcd.root.<key>.lgae.npz`` (hidden, so globs such as ``DIR/*`` do not
pick it up); when ``DIR`` is not writable it goes to ``$LGAE_CACHE_DIR``, else ``$XDG_CACHE_HOME/lgae``, else
``~/.cache/lgae``. ``key`` hashes the source's identity (size, modification time, and the first and last MiB
of its content), the validated data config, ``n_particles``, ``max_jets`` and :data:`CACHE_VERSION`; changing
any of them reads the ROOT file again. Files are written to a temporary name and renamed, so a crash or a
failed read never leaves a partial cache. Delete the ``.lgae.npz`` files to clear it.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .reader import Jets, read_file

#: bump when the reader's output changes meaning, to invalidate old caches
CACHE_VERSION = 1
_EDGE = 1 << 20


def file_fingerprint(path: str | os.PathLike) -> str:
    """Hash of a file's size, mtime and first/last MiB (cheap even for 10 GB files)."""
    st = os.stat(path)
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
    with open(path, "rb") as f:
        h.update(f.read(_EDGE))
        if st.st_size > 2 * _EDGE:
            f.seek(-_EDGE, os.SEEK_END)
            h.update(f.read(_EDGE))
    return h.hexdigest()


def cache_key(path, n_particles: int, cfg: Mapping, max_jets: int | None) -> str:
    setup = json.dumps(
        {"v": CACHE_VERSION, "n": n_particles, "cfg": cfg, "max_jets": max_jets}, sort_keys=True
    )
    return hashlib.blake2b(f"{file_fingerprint(path)}|{setup}".encode(), digest_size=10).hexdigest()


def default_cache_dir() -> Path:
    if os.environ.get("LGAE_CACHE_DIR"):
        return Path(os.environ["LGAE_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lgae"


def cache_paths(path, key: str, cache_dir=None) -> list[Path]:
    """Candidate cache files, in order of preference: next to the source, then the cache directory."""
    name = f".{Path(path).name}.{key}.lgae.npz"
    return [Path(path).parent / name, Path(cache_dir or default_cache_dir()) / name]


def cached_read(
    path: str, n_particles: int, cfg: Mapping, max_jets: int | None = None, cache_dir=None
) -> Jets:
    """:func:`read_file` through the cache: load the ``.npz`` when it exists, else read and write it."""
    key = cache_key(path, n_particles, cfg, max_jets)
    candidates = cache_paths(path, key, cache_dir)
    for candidate in candidates:
        if candidate.is_file():
            try:
                return load_npz(candidate, path)
            except Exception as err:  # a damaged cache: read the source again and overwrite it
                warnings.warn(f"{candidate}: ignoring an unreadable cache file ({err})", stacklevel=2)
    jets = read_file(path, n_particles, cfg, max_jets=max_jets)
    for candidate in candidates:
        try:
            save_npz(jets, candidate)
            break
        except OSError:
            continue
    else:
        warnings.warn(
            f"{path}: could not write a cache file in {candidates[0].parent} nor {candidates[1].parent}",
            stacklevel=2,
        )
    return jets


def save_npz(jets: Jets, target: Path) -> None:
    """Write ``jets`` to ``target`` atomically (temporary file in the same directory, then rename)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"p4": jets.p4, "mask": jets.mask}
    if jets.label is not None:
        arrays["label"] = jets.label
    for prefix, d in (("jet/", jets.jet), ("part/", jets.part)):
        arrays.update({prefix + k: v for k, v in d.items()})
    if jets.entry is not None:
        arrays["entry"] = jets.entry
    meta = {"label_names": jets.label_names, "stats": jets.stats, "version": CACHE_VERSION}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".npz.tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a cache is as readable as its source
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_npz(cache_file: Path, source: str) -> Jets:
    """Rebuild the :class:`Jets` of one source file from its cache."""
    with np.load(cache_file, allow_pickle=False) as z:
        meta = json.loads(z["meta"].tobytes().decode())
        if meta.get("version") != CACHE_VERSION:
            raise ValueError(f"cache version {meta.get('version')} != {CACHE_VERSION}")
        n = len(z["p4"])
        return Jets(
            p4=z["p4"],
            mask=z["mask"],
            label=z["label"] if "label" in z.files else None,
            jet={k[4:]: z[k] for k in z.files if k.startswith("jet/")},
            part={k[5:]: z[k] for k in z.files if k.startswith("part/")},
            source=[os.fspath(source)],
            entry=z["entry"] if "entry" in z.files else None,
            file_index=np.zeros(n, dtype=np.int64),
            label_names=meta["label_names"],
            stats=meta["stats"],
        )
