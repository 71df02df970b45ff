"""Streaming jets from ROOT files larger than memory: :class:`StreamingJets`, an ``IterableDataset``.

The files are cut into *units* of at most ``step_size`` entries (per file, within the reader config's
``entry_start``/``entry_stop``). Each epoch the units are permuted with a generator seeded by
``(seed, epoch)`` and dealt round-robin to the shards, one shard per (rank, DataLoader worker): shards are
disjoint and together cover every unit. A shard reads its units chunk by chunk with uproot and turns each
chunk into padded arrays with *the reader's own per-chunk conversion* (selection, new variables, pT
ordering, truncation, padding and ``on_nonfinite`` are exactly those of :func:`lgae.data.load_jets`;
``massless`` as in :func:`lgae.data.prepare_jets`). It collects up to ``buffer_size`` jets, shuffles the
buffer with a seeded generator and yields ``(p4 float64 (B, n, 4), mask bool (B, n))`` batches of
``batch_size`` jets. The memory used is that of the buffer plus one chunk, whatever the files' total size.

With ``shuffle=False`` the units keep file order and the jets come out in exactly the order (and with exactly
the values) that :func:`lgae.data.load_jets` gives, split into batches.

Config switch (``data:`` section of a run config)::

    data:
      train: /data/qcd_*.root
      val: /data/qcd_val.root      # required: validation jets are read into memory
      stream: true                 # or {buffer_size: 100000, step_size: 50000, num_workers: 2, shuffle: true}

:func:`bench_stream_memory` measures the peak resident memory of streaming a synthetic file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import torch

from .._validate import ConfigError, check_keys
from .format import load_reader_config
from .reader import DataError, Jets, _find_tree, _Plan, _warn_drops, resolve_paths

__all__ = [
    "STREAM_DEFAULTS",
    "StreamingJets",
    "bench_stream_memory",
    "check_stream_config",
    "stream_options",
    "write_synthetic_root",
]

#: small inputs are cut into at least this many units per rank (so that DataLoader workers have work too)
MIN_UNITS_PER_RANK = 8

#: options of ``data.stream`` when given as a mapping (``stream: true`` means all defaults)
STREAM_DEFAULTS: dict = {
    "buffer_size": 100_000,  # jets shuffled together (memory: ~ buffer_size * n_particles * 40 bytes)
    "step_size": None,  # entries per unit / chunk read; None: the reader config's step_size
    "shuffle": True,  # permute units per epoch and shuffle within the buffer
    "num_workers": 0,  # DataLoader worker processes per rank (each reads its own shard)
}


def stream_options(value) -> dict | None:
    """Normalise ``data.stream``: None/False -> None (in memory), True -> defaults, a mapping -> checked."""
    if value is None or value is False:
        return None
    if value is True:
        return dict(STREAM_DEFAULTS)
    if not isinstance(value, Mapping):
        raise ConfigError(f"data.stream must be true, false or a mapping of options, got {value!r}")
    check_keys(dict(value), STREAM_DEFAULTS, "data.stream")
    out = {**STREAM_DEFAULTS, **value}
    for key in ("buffer_size", "num_workers"):
        v = out[key]
        low = 1 if key == "buffer_size" else 0
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise ConfigError(f"data.stream.{key} must be an integer >= {low}, got {v!r}")
    v = out["step_size"]
    if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
        raise ConfigError(f"data.stream.step_size must be a positive integer or null, got {v!r}")
    if not isinstance(out["shuffle"], bool):
        raise ConfigError(f"data.stream.shuffle must be true or false, got {out['shuffle']!r}")
    return out


def check_stream_config(cfg: Mapping) -> dict:
    """Validate the streaming-related keys of a (defaults-filled) ``data:`` section; returns a copy with
    ``stream`` normalised (``False`` or the full options mapping).

    Streaming needs jets files in ``train`` and validation files in ``val`` (read into memory); it does not
    combine with ``toy``.
    """
    cfg = dict(cfg)
    opts = stream_options(cfg.get("stream"))
    if opts is None:
        cfg["stream"] = False
        return cfg
    if cfg.get("toy") is not None:
        raise ConfigError("data.stream streams ROOT files; it does not apply to data.toy")
    if cfg.get("val") is None:
        raise ConfigError(
            "data.stream: true needs data.val (validation files, read into memory); a fraction of a stream "
            "cannot be split off"
        )
    if isinstance(cfg.get("train"), Mapping):
        raise ConfigError("data.stream: give data.train as files (generate them first with `lgae generate`)")
    cfg["stream"] = opts
    return cfg


# ------------------------------------------------------------------------------------------------------------
# reading units with the reader's conversion


def _open_plan(path: str, cfg: Mapping):
    """``(uproot handle, plan)`` for one file, with the same checks as :func:`lgae.data.reader.read_file`."""
    import uproot

    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    try:
        handle = uproot.open(path, array_cache=None)
    except Exception as err:
        raise DataError(
            f"{path}: cannot open as a ROOT file ({type(err).__name__}: {err}); "
            "is it truncated or not a ROOT file?"
        ) from None
    expected, size = getattr(handle.file, "fEND", 0), os.path.getsize(path)
    if size < expected:
        handle.close()
        raise DataError(f"{path}: the file is truncated ({size} bytes, its header says {expected})")
    tree, name = _find_tree(handle, path, cfg["tree"])
    return handle, _Plan(path, name, tree, cfg)


def _entry_range(tree, cfg: Mapping) -> tuple[int, int]:
    n = tree.num_entries
    start = min(cfg["entry_start"] or 0, n)
    stop = n if cfg["entry_stop"] is None else min(cfg["entry_stop"], n)
    return start, max(start, stop)


class StreamingJets(torch.utils.data.IterableDataset):
    """Batches of jets streamed from ROOT files; see the module docstring.

    Parameters
    ----------
    paths : str, path or list
        ROOT files, globs or directories (as :func:`lgae.data.load_jets`).
    n_particles : int
        Particle slots per jet.
    config : path, mapping or None
        The reader's data config (branches, selection, ...; see :mod:`lgae.data.format`).
    batch_size : int
        Jets per yielded batch (per rank: in a distributed run pass the global batch size / world).
    buffer_size : int
        Jets collected and shuffled together before batches are cut.
    shuffle : bool
        Permute the units per epoch and shuffle within the buffer (seeded by ``seed``, the epoch and the
        shard); False keeps file order.
    seed : int
    rank, world : int, optional
        This process's shard of the units; default: the initialised ``torch.distributed`` group, else (0, 1).
    step_size : int, optional
        Entries per unit (and per uproot read); default the config's ``step_size``.
    massless : bool
        Set ``E = |p|`` (as ``data.massless``).
    drop_last : bool
        Drop a shard's last incomplete batch.
    """

    def __init__(
        self,
        paths,
        n_particles: int = 30,
        config=None,
        *,
        batch_size: int = 256,
        buffer_size: int = 100_000,
        shuffle: bool = True,
        seed: int = 0,
        rank: int | None = None,
        world: int | None = None,
        step_size: int | None = None,
        massless: bool = False,
        drop_last: bool = False,
    ):
        super().__init__()
        if isinstance(n_particles, bool) or not isinstance(n_particles, int) or n_particles < 1:
            raise ValueError(f"n_particles must be a positive integer, got {n_particles!r}")
        if batch_size < 1 or buffer_size < 1:
            raise ValueError("batch_size and buffer_size must be >= 1")
        self.cfg = load_reader_config(config)
        self.files = resolve_paths(paths)
        self.n_particles = int(n_particles)
        self.batch_size = int(batch_size)
        self.buffer_size = max(int(buffer_size), self.batch_size)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.step = int(step_size or self.cfg["step_size"])
        self.massless = bool(massless)
        self.drop_last = bool(drop_last)
        if rank is None or world is None:
            import torch.distributed as dist

            on = dist.is_available() and dist.is_initialized()
            rank, world = (dist.get_rank(), dist.get_world_size()) if on else (0, 1)
        if not 0 <= rank < world:
            raise ValueError(f"rank must be in [0, world), got rank={rank}, world={world}")
        self.rank, self.world = int(rank), int(world)
        self.epoch = 0
        self.units = self._plan_units()
        self.n_entries = sum(stop - start for _, start, stop in self.units)

    def _plan_units(self) -> list[tuple[int, int, int]]:
        """Units of at most ``step`` entries, and at least ``MIN_UNITS_PER_RANK * world`` units in all (small
        inputs are cut finer), so that every rank (and DataLoader worker) gets some."""
        ranges = []
        for path in self.files:
            handle, plan = _open_plan(path, self.cfg)
            with handle:
                ranges.append(_entry_range(plan.tree, self.cfg))
        total = sum(stop - start for start, stop in ranges)
        size = max(1, min(self.step, total // (MIN_UNITS_PER_RANK * self.world)))
        return [
            (i, s, min(s + size, stop))
            for i, (start, stop) in enumerate(ranges)
            for s in range(start, stop, size)
        ]

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose unit order and buffer shuffles the next iteration uses."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        """Approximate number of batches of this rank (entries before any selection / world / batch size)."""
        return max(1, self.n_entries // (self.world * self.batch_size))

    # -- shards
    def _shard(self) -> tuple[int, int]:
        info = torch.utils.data.get_worker_info()
        workers, wid = (info.num_workers, info.id) if info is not None else (1, 0)
        return self.rank * workers + wid, self.world * workers

    def shard_units(
        self, shard: int | None = None, n_shards: int | None = None
    ) -> list[tuple[int, int, int]]:
        """The ``(file index, entry start, entry stop)`` units of a shard in this epoch, in reading order."""
        if shard is None or n_shards is None:
            shard, n_shards = self._shard()
        units = list(self.units)
        if self.shuffle:
            perm = np.random.default_rng([self.seed, self.epoch]).permutation(len(units))
            units = [units[i] for i in perm]
        mine = units[shard::n_shards]
        if self.shuffle:  # read file by file (one open file at a time), in the permuted file order
            first = {}
            for u in mine:
                first.setdefault(u[0], len(first))
            mine.sort(key=lambda u: first[u[0]])
        return mine

    # -- jets
    def iter_jets(self, shard: int | None = None, n_shards: int | None = None) -> Iterator[Jets]:
        """The shard's jets as :class:`~lgae.data.Jets` chunks (``entry``/``file_index`` set), unshuffled."""
        from .transforms import Massless

        handle = plan = None
        current = None
        cfg = self.cfg
        try:
            for fi, start, stop in self.shard_units(shard, n_shards):
                if fi != current:
                    if handle is not None:
                        handle.close()
                    handle, plan = _open_plan(self.files[fi], cfg)
                    current = fi
                stats = {"read": 0, "nonfinite": 0, "selection": 0, "empty": 0}
                bad: list[np.ndarray] = []
                for chunk, first in plan._iterate(start, stop, self.step):
                    jets = plan._convert(chunk, first, self.n_particles, stats, bad)
                    if bad and cfg["on_nonfinite"] == "fail":
                        entries = ", ".join(map(str, np.concatenate(bad)[:10].tolist()))
                        raise DataError(
                            f"{plan.where}: jet(s) with non-finite (NaN or inf) particle momenta at entries "
                            f"{entries}; set 'on_nonfinite: drop' in the data config to drop them"
                        )
                    if jets is None:
                        continue
                    jets.file_index = np.full(len(jets), fi, dtype=np.int64)
                    jets.source = [self.files[fi]]
                    if self.massless:
                        p4, mask = jets.to_torch()
                        jets.p4 = Massless().forward(p4, mask).numpy()
                    yield jets
                _warn_drops(self.files[fi], stats)
        finally:
            if handle is not None:
                handle.close()

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        shard, n_shards = self._shard()
        rng = np.random.default_rng([self.seed, self.epoch, shard, 1])
        bs = self.batch_size
        p4_buf: list[np.ndarray] = []
        mask_buf: list[np.ndarray] = []
        held = 0

        def cut(final: bool):
            # one concatenated buffer; batches and the carried-over remainder are small fancy-indexed copies,
            # so the buffer is freed as soon as its batches are gone
            nonlocal p4_buf, mask_buf, held
            p4 = np.concatenate(p4_buf) if len(p4_buf) > 1 else p4_buf[0]
            mask = np.concatenate(mask_buf) if len(mask_buf) > 1 else mask_buf[0]
            p4_buf, mask_buf = [], []
            order = rng.permutation(len(p4)) if self.shuffle else np.arange(len(p4))
            n_full = len(p4) // bs * bs
            for s in range(0, n_full, bs):
                take = order[s : s + bs]
                yield torch.from_numpy(p4[take]), torch.from_numpy(mask[take])
            rest = order[n_full:]
            if final:
                if len(rest) and not self.drop_last:
                    yield torch.from_numpy(p4[rest]), torch.from_numpy(mask[rest])
                held = 0
            else:  # the remainder stays for the next buffer
                p4_buf, mask_buf, held = [p4[rest]], [mask[rest]], len(rest)

        for jets in self.iter_jets(shard, n_shards):
            p4_buf.append(jets.p4)
            mask_buf.append(jets.mask)
            held += len(jets)
            if held >= self.buffer_size:
                yield from cut(final=False)
        if held:
            yield from cut(final=True)


def build_stream_datasets(data_cfg: Mapping, seed: int, batch_size: int, rank: int = 0, world: int = 1):
    """``(StreamingJets train set, in-memory val (p4, mask), info)`` for a ``data:`` section with ``stream``.

    ``batch_size`` is the global batch: each of the ``world`` ranks streams ``batch_size // world`` jets per
    batch from its own shard.
    """
    from .bundle import prepare_jets

    opts = stream_options(data_cfg.get("stream"))
    if opts is None:
        raise ConfigError("build_stream_datasets needs data.stream")
    local = max(1, batch_size // max(1, world))
    train = StreamingJets(
        data_cfg["train"],
        data_cfg["n_particles"],
        data_cfg.get("reader"),
        batch_size=local,
        buffer_size=opts["buffer_size"],
        shuffle=opts["shuffle"],
        seed=seed,
        rank=rank,
        world=world,
        step_size=opts["step_size"],
        massless=bool(data_cfg.get("massless")),
    )
    bundle_keys = {k: v for k, v in data_cfg.items() if k != "stream"}
    val = prepare_jets(data_cfg["val"], bundle_keys)
    if len(val) == 0:
        raise DataError(f"{', '.join(val.source)}: no validation jets (check the selection and entry range)")
    info = {
        "input_kind": "jets",
        "n_train": None,
        "n_train_entries": train.n_entries,
        "n_val": len(val),
        "n_features": 4,
        "n_particles": data_cfg["n_particles"],
        "sources": {"train": list(train.files), "val": list(val.source)},
        "val_from": "files",
        "streamed": True,
        "massless": bool(data_cfg.get("massless")),
        "units": "GeV",
        "seed": seed,
    }
    if opts["num_workers"]:
        train = _Loader(train, opts["num_workers"])
    return train, val.to_torch(), info


class _Loader(torch.utils.data.IterableDataset):
    """A :class:`StreamingJets` read by DataLoader workers (``batch_size=None``), still an IterableDataset."""

    def __init__(self, dataset: StreamingJets, num_workers: int):
        super().__init__()
        self.dataset, self.num_workers = dataset, num_workers
        self.n_entries = dataset.n_entries

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)

    def __iter__(self):
        loader = torch.utils.data.DataLoader(self.dataset, batch_size=None, num_workers=self.num_workers)
        return iter(loader)


# ------------------------------------------------------------------------------------------------------------
# synthetic files and the memory benchmark


def write_synthetic_root(
    path, n_jets: int, n_max: int = 40, seed: int = 0, chunk: int = 100_000, compression=None
) -> str:
    """Write ``n_jets`` synthetic ~1 TeV jets (5..n_max massless constituents, float32) in the weaver layout,
    ``chunk`` jets at a time (the writer's memory does not grow with ``n_jets``). Returns the path."""
    import awkward as ak
    import uproot

    rng = np.random.default_rng(seed)
    path = os.fspath(path)
    with uproot.recreate(path, compression=compression) as f:
        for start in range(0, n_jets, chunk):
            n = min(chunk, n_jets - start)
            counts = rng.integers(5, n_max + 1, n)
            total = int(counts.sum())
            pt = rng.exponential(30.0, total).astype(np.float32) + 1.0
            jet_eta = np.repeat(rng.uniform(-2, 2, n), counts)
            jet_phi = np.repeat(rng.uniform(-np.pi, np.pi, n), counts)
            eta = (jet_eta + 0.1 * rng.standard_normal(total)).astype(np.float32)
            phi = (jet_phi + 0.1 * rng.standard_normal(total)).astype(np.float32)
            px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
            energy = np.sqrt(px * px + py * py + pz * pz)
            parts = {
                k: ak.unflatten(v.astype(np.float32), counts)
                for k, v in (("px", px), ("py", py), ("pz", pz), ("energy", energy))
            }
            data = {"part": ak.zip(parts), "label": np.zeros(n, dtype=np.int32)}
            if start == 0:
                f.mktree(
                    "tree", {k: ak.type(v) if isinstance(v, ak.Array) else v.dtype for k, v in data.items()}
                )
            f["tree"].extend(data)
    return path


def _rss_anon() -> int | None:
    """Anonymous resident memory (bytes) of this process, Linux only: RSS without mapped file pages."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


class _PeakRSS:
    """Peak resident set size (and anonymous RSS) of this process, sampled every ``period`` s in a thread.

    uproot memory-maps the file, so the total RSS also counts the file's pages that were read (clean,
    reclaimable page cache); the anonymous RSS is the memory the process itself allocated.
    """

    def __init__(self, period: float = 0.005):
        import psutil

        self.proc, self.period = psutil.Process(), period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self):
        self.peak = max(self.peak, self.proc.memory_info().rss)
        anon = _rss_anon()
        if anon is not None:
            self.peak_anon = max(self.peak_anon or 0, anon)

    def _run(self):
        while not self._stop.is_set():
            self._sample()
            time.sleep(self.period)

    def __enter__(self):
        self.base = self.peak = self.proc.memory_info().rss
        self.base_anon = self.peak_anon = _rss_anon()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._sample()


def _measure(
    path: str, mode: str, n_particles: int, batch_size: int, buffer_size: int, step_size: int | None = None
) -> dict:
    """Stream (or load) one file in this process and report the peak RSS growth (run in a subprocess)."""
    import awkward  # noqa: F401 - imported before the baseline: only the data's memory is measured
    import vector  # noqa: F401

    torch.set_num_threads(1)
    ds = StreamingJets(
        path, n_particles, batch_size=batch_size, buffer_size=buffer_size, step_size=step_size, seed=0
    )
    t0 = time.perf_counter()
    n = 0
    with _PeakRSS() as rss:
        if mode == "stream":
            for p4, _mask in ds:
                n += len(p4)
        else:
            from .reader import load_jets

            jets = load_jets(path, n_particles)
            n = len(jets)
    dt = time.perf_counter() - t0
    return {
        "mode": mode,
        "jets": n,
        "seconds": dt,
        "jets_per_s": n / dt if dt > 0 else None,
        "rss_before_mb": rss.base / 2**20,
        "peak_rss_mb": rss.peak / 2**20,
        "peak_growth_mb": (rss.peak - rss.base) / 2**20,
        "peak_anon_growth_mb": None if rss.base_anon is None else (rss.peak_anon - rss.base_anon) / 2**20,
    }


def bench_stream_memory(
    n_jets: int = 1_000_000,
    *,
    n_particles: int = 30,
    batch_size: int = 256,
    buffer_size: int = 100_000,
    step_size: int | None = None,
    basket_size: int = 100_000,
    in_memory: bool = False,
    workdir: str | os.PathLike | None = None,
    keep: bool = False,
) -> dict:
    """Peak resident memory of streaming a synthetic ``n_jets`` ROOT file (written here, deleted afterwards).

    The file (5..40 constituents per jet, float32, uncompressed, TBaskets of ``basket_size`` entries: uproot
    decompresses a whole basket to read any entry of it) is written in chunks, then read in a *fresh*
    Python process so that the writer's memory does not count: the whole file is streamed through
    :class:`StreamingJets` (buffer ``buffer_size`` jets, units/chunks of ``step_size`` entries, default the
    reader's 100000, batches of ``batch_size``) while a thread samples the process's RSS with psutil
    (after the imports and the opening of the file, so that ``peak_growth_mb`` is the data's memory). With
    ``in_memory=True`` the same file is also read with :func:`lgae.data.load_jets` for comparison.

    Returns
    -------
    dict
        ``n_jets``, ``file_mb``, ``write_s`` and ``stream`` (and ``in_memory``): ``peak_rss_mb``,
        ``peak_growth_mb`` (peak minus the RSS before reading; includes the memory-mapped file pages uproot
        read), ``peak_anon_growth_mb`` (the same for anonymous memory: what the process allocated, Linux),
        ``jets``, ``seconds``, ``jets_per_s``.
    """
    tmp = tempfile.mkdtemp(prefix="lgae_stream_bench_", dir=workdir)
    path = os.path.join(tmp, f"synthetic_{n_jets}.root")
    t0 = time.perf_counter()
    write_synthetic_root(path, n_jets, chunk=basket_size)
    result: dict = {
        "n_jets": n_jets,
        "file_mb": os.path.getsize(path) / 2**20,
        "write_s": time.perf_counter() - t0,
        "n_particles": n_particles,
        "buffer_size": buffer_size,
        "step_size": step_size or 100_000,
        "basket_size": basket_size,
        "batch_size": batch_size,
    }
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    try:
        for mode in ("stream", "memory") if in_memory else ("stream",):
            code = (
                "import json, sys; from lgae.data.stream import _measure; "
                f"print(json.dumps(_measure({path!r}, {mode!r}, {n_particles}, {batch_size}, {buffer_size}, "
                f"{step_size!r})))"
            )
            out = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
            ).stdout
            result["stream" if mode == "stream" else "in_memory"] = json.loads(out.strip().splitlines()[-1])
    finally:
        if not keep:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    return result
