#!/usr/bin/env python
"""Throughput and memory of every registered model: train steps and inference (anomaly scores) per second.

For each model of ``lgae.models.available_models()`` at its default config (``n_particles=30``), on synthetic
30-particle jets (~1 TeV, pT-ordered, 10-30 real particles, zero padding), batch 256, float32 and float64:

* train step = ``zero_grad; loss(p4, mask).backward(); Adam.step()``; inference = ``anomaly_score(p4, mask)``;
  jets/s from the median step time over ``--steps`` timed steps after ``--warmup`` untimed ones;
* inference on CPU also in ``--procs`` (default 2) single-threaded worker processes
  (:class:`lgae.eval.parallel.ProcessScorer`, what ``lgae evaluate --workers`` runs), printed on a line of its
  own (``2x1``: 2 processes x 1 thread): jets/s of the workers together, each scoring ``--steps`` batches of
  ``--batch`` jets per timed call (median of 3 calls; the workers' start-up not timed). On a few cores this
  beats one process's intra-op threads, which leave a core idle during the many small operations;
  ``--compile`` adds the same with ``torch.compile``'d workers (the ``2x1c`` line; compilation not timed);
* peak memory: on CPU the peak resident-set growth over up to 5 further steps after returning freed heap
  memory to the OS (psutil, sampled every 2 ms; includes the autograd graph and temporaries; measured after
  the timed steps so that the sampler does not slow them), on CUDA the growth of
  ``torch.cuda.max_memory_allocated`` over the warm-up and timed steps;
* for the LGAE (``--flops-model``) the FLOPs of one train step counted by
  ``torch.utils.flop_counter.FlopCounterMode`` (matmul-like ops only) against the machine's measured peak (a
  large square matmul in the same dtype and threads).

CPU runs use ``torch.set_num_threads`` for each value of ``--threads`` (default 2, as the speed targets; add 1
for single-thread numbers). CUDA runs happen when a GPU is present (``--device auto``). The process reuses
freed heap memory as the ``lgae`` command line does (:func:`lgae.allocator.tune_allocator`); ``--malloc
default`` measures with glibc's defaults instead (a fresh ``mmap`` and page faults for every large temporary).

Two code versions cannot be compared by two runs of this script on a machine whose speed swings: see
``scripts/bench_ab.py`` (both versions in one process, called alternately).

Two more suites (``--suite``): ``reader`` times :func:`lgae.data.load_jets` on a local ROOT file (jets
converted per second and per CPU-second; see ``scripts/bench_data.py``), ``stream`` measures the peak memory
of training input streamed from growing synthetic ROOT files against reading them into memory (see
``scripts/bench_stream.py``). ``--suite all`` runs all three.

Examples::

    python scripts/bench.py --out bench.json
    python scripts/bench.py --suite reader stream --out bench_data.json
    python scripts/bench.py --models lgae --threads 1 2 --steps 20
    python scripts/bench.py --models lgae --config '{"aggregation": "minmax", "tau_vectors": 8}'
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lgae.allocator import tune_allocator  # noqa: E402
from lgae.models import available_models, build_model  # noqa: E402

SUITES = ("models", "reader", "stream")


def synthetic_jets(batch: int, n: int = 30, seed: int = 0, dtype=torch.float64, device="cpu"):
    """Jets of 10..n massless constituents around a random axis with a steeply falling pT spectrum,
    pT-ordered."""
    g = torch.Generator().manual_seed(seed)
    n_real = torch.randint(10, n + 1, (batch,), generator=g)
    mask = torch.arange(n)[None] < n_real[:, None]
    z = torch.rand(batch, n, generator=g, dtype=torch.float64).pow(4)
    z = z * mask / (z * mask).sum(1, keepdim=True)
    z, order = z.sort(1, descending=True)
    mask = mask.gather(1, order)
    pt = 1000.0 * z
    eta = (
        0.15 * torch.randn(batch, n, generator=g, dtype=torch.float64)
        + 2.0 * torch.rand(batch, 1, generator=g)
        - 1
    )
    phi = 0.15 * torch.randn(batch, n, generator=g, dtype=torch.float64) + 6.28 * torch.rand(
        batch, 1, generator=g
    )
    p = torch.stack(
        [pt * torch.cosh(eta), pt * torch.cos(phi), pt * torch.sin(phi), pt * torch.sinh(eta)], -1
    )
    return (p * mask[..., None]).to(device=device, dtype=dtype), mask.to(device)


class _RSSSampler:
    """Peak RSS growth of this process while active (CPU memory)."""

    def __init__(self, period: float = 0.002):
        import psutil

        self.proc, self.period = psutil.Process(), period
        self.base = self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(self.period)

    def __enter__(self):
        self.base = self.peak = self.proc.memory_info().rss
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()

    @property
    def mb(self) -> float:
        return (self.peak - self.base) / 2**20


def _release_memory():
    """Return freed heap memory to the OS (glibc), so the RSS sampler sees the next allocations."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:  # not glibc
        pass


def _sync(device: str):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _time_steps(fn, steps: int, warmup: int, device: str) -> list[float]:
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t)
    return times


def _inputs(model, batch: int, dtype, device: str, seed: int = 0):
    if getattr(model, "input_kind", "jets") == "features":
        d = model.input_dim() or 16
        g = torch.Generator().manual_seed(seed)
        return (torch.randn(batch, d, generator=g, dtype=dtype).to(device), None)
    return synthetic_jets(batch, 30, seed=seed, dtype=dtype, device=device)


def step_function(model, x, mask, kind: str):
    """The timed step of ``kind``, with the model put in its mode: ``"train"`` = ``zero_grad; loss(x,
    mask).backward(); Adam.step()`` (lr 1e-4, an optimiser of its own), ``"infer"`` = ``anomaly_score(x,
    mask)`` in eval mode without autograd."""
    if kind == "infer":
        model.eval()

        def infer_step():
            with torch.no_grad():
                model.anomaly_score(x, mask)

        return infer_step
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def train_step():
        opt.zero_grad(set_to_none=True)
        model.loss(x, mask).backward()
        opt.step()

    return train_step


def bench_model(
    name: str,
    dtype,
    device: str,
    batch: int,
    steps: int,
    warmup: int,
    config: dict | None = None,
    procs: int = 0,
    compile_procs: bool = False,
):
    torch.manual_seed(0)
    cfg = {"n_particles": 30}
    cfg.update(config or {})
    try:
        model = build_model(name, **cfg)
    except Exception:  # models without n_particles
        cfg.pop("n_particles")
        model = build_model(name, **cfg)
    model = model.to(device=device, dtype=dtype)
    x, mask = _inputs(model, batch, dtype, device)
    row = {
        "model": name,
        "device": device,
        "dtype": str(dtype).replace("torch.", ""),
        "batch": batch,
        "threads": torch.get_num_threads() if device == "cpu" else None,
        "params": model.n_params,
    }
    for kind in ("train", "infer"):
        fn = step_function(model, x, mask, kind)
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            times = _time_steps(fn, steps, warmup, device)
            mem = (torch.cuda.max_memory_allocated() - base) / 2**20
        else:
            # speed first, without the sampler thread (its wake-ups every 2 ms take a core's share from a
            # 2-thread run); then the memory of a few more steps, after returning freed memory to the OS
            times = _time_steps(fn, steps, warmup, device)
            _release_memory()
            with _RSSSampler() as s:
                _time_steps(fn, min(steps, 5), 0, device)
            mem = s.mb
        med = statistics.median(times)
        row[f"{kind}_ms"] = 1e3 * med
        row[f"{kind}_jets_per_s"] = batch / med
        row[f"{kind}_peak_mb"] = mem
    if procs and device == "cpu":
        row["infer_procs"] = procs
        row["infer_procs_jets_per_s"] = procs_throughput(model, batch, steps, procs)
        if compile_procs:
            info: list = []
            row["infer_procs_compiled_jets_per_s"] = procs_throughput(
                model, batch, steps, procs, compile=True, info=info
            )
            row["infer_procs_compile"] = info
    return row


def procs_throughput(
    model, batch: int, steps: int, procs: int, repeats: int = 3, compile: bool = False, info=None
) -> float | None:
    """Inference jets/s of ``procs`` single-threaded worker processes scoring batches of ``batch`` jets
    (:class:`lgae.eval.parallel.ProcessScorer`, as ``lgae evaluate --workers`` does): each worker scores
    ``steps`` batches per timed call; the median over ``repeats`` calls of jets / wall time, after starting
    the workers and a warm-up batch in each (start-up and, with ``compile``, compilation excluded; each
    worker's compilation outcome is appended to ``info``)."""
    from lgae.eval.parallel import ProcessScorer

    dtype = next(p.dtype for p in model.parameters() if p.is_floating_point())
    parts = [_inputs(model, batch, dtype, "cpu", seed=i) for i in range(procs * steps)]
    x = torch.cat([p[0] for p in parts]).numpy()
    mask = None if parts[0][1] is None else torch.cat([p[1] for p in parts]).numpy()
    if mask is None:  # a model on flat features (no jets to hand out): not measured
        return None
    rates = []
    with ProcessScorer(
        model,
        workers=procs,
        batch_size=batch,
        task_jets=batch * steps,
        compile=compile,
        n_particles=x.shape[1],
    ) as scorer:
        started = scorer.warm_up(x, mask)
        if info is not None:
            info.extend(started)
        for _ in range(repeats):
            t = time.perf_counter()
            scorer.score(x, mask)
            rates.append(len(x) / (time.perf_counter() - t))
    return statistics.median(rates)


def peak_matmul_flops(dtype, device: str, n: int = 2048, reps: int = 5) -> float:
    """FLOP/s of an ``n x n`` matmul (the machine's practical peak for this dtype and thread count)."""
    a = torch.randn(n, n, dtype=dtype, device=device)
    b = torch.randn(n, n, dtype=dtype, device=device)
    for _ in range(2):
        a @ b
    _sync(device)
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    _sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - t)


def count_train_flops(name: str, dtype, device: str, batch: int, config: dict | None = None) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    cfg = {"n_particles": 30}
    cfg.update(config or {})
    model = build_model(name, **cfg).to(device=device, dtype=dtype)
    x, mask = _inputs(model, batch, dtype, device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    with FlopCounterMode(display=False) as fc:
        opt.zero_grad()
        model.loss(x, mask).backward()
        opt.step()
    return float(fc.get_total_flops())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--models", nargs="*", default=None, help="subset of the registered models (default: all)"
    )
    ap.add_argument("--dtypes", nargs="*", default=["float32", "float64"])
    ap.add_argument("--threads", nargs="*", type=int, default=[2], help="CPU thread counts to run")
    ap.add_argument(
        "--device",
        default="auto",
        choices=["auto", "cpu", "cuda"],
        help="auto: CPU, plus CUDA when available",
    )
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=10, help="timed steps per measurement")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument(
        "--procs",
        type=int,
        default=2,
        help="CPU inference also in this many single-threaded worker processes (lgae.eval.parallel; the "
        "'infer j/s' column of the N x 1 line); 0 to skip",
    )
    ap.add_argument(
        "--compile",
        action="store_true",
        help="also time the --procs workers scoring with torch.compile (the 'Nx1c' line; each worker "
        "compiles first: ~70 s the first time on a machine, ~10 s with inductor's cache; not timed)",
    )
    ap.add_argument(
        "--config", default=None, help="JSON dict of extra model config keys (applied to every model)"
    )
    ap.add_argument(
        "--flops-model", default="lgae", help="model whose train-step FLOPs are counted ('' to skip)"
    )
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    ap.add_argument(
        "--malloc",
        default="tuned",
        choices=("tuned", "default"),
        help="tuned: lgae.allocator.tune_allocator() as the lgae command line does (freed memory is reused, "
        "no page faults per step); default: glibc's defaults, as a plain Python script gets",
    )
    ap.add_argument(
        "--suite", nargs="+", default=["models"], choices=[*SUITES, "all"], help="what to measure"
    )
    ap.add_argument("--reader-jets", type=int, default=100_000, help="jets of the reader suite's file")
    ap.add_argument("--reader-compression", default="lz4", choices=("zlib", "lz4", "zstd", "none"))
    ap.add_argument(
        "--stream-sizes", type=int, nargs="+", default=[200_000, 1_000_000], help="jets per streamed file"
    )
    ap.add_argument("--stream-chunk", type=int, default=100_000, help="stream step/buffer/basket size")
    args = ap.parse_args(argv)
    malloc_tuned = tune_allocator(args.malloc == "tuned")
    print(f"allocator: {'tuned (lgae.allocator)' if malloc_tuned else 'glibc defaults'}", flush=True)
    suites = SUITES if "all" in args.suite else tuple(dict.fromkeys(args.suite))
    result: dict = {}
    if "models" in suites:
        result.update(_bench_models(args, ap))
    if "reader" in suites:
        result["reader"] = _bench_reader(args)
    if "stream" in suites:
        result["stream"] = _bench_stream(args)
    if args.out:
        meta = {
            "torch": torch.__version__,
            "batch": args.batch,
            "steps": args.steps,
            "malloc_tuned": malloc_tuned,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        }
        Path(args.out).write_text(json.dumps({"meta": meta, **result}, indent=2))
        print(f"wrote {args.out}")
    return 0


def _bench_reader(args) -> dict:
    """Reader throughput on one core (see ``scripts/bench_data.py``)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_data import bench_reader

    torch.set_num_threads(1)
    r = bench_reader(n_jets=args.reader_jets, compression=args.reader_compression)
    print(
        f"reader: {r['file']} -> {r['n_jets']} x {r['n_particles']}: {r['jets_per_s']} jets/s wall, "
        f"{r['jets_per_cpu_s']} jets/CPU-s (bare uproot read {r['uproot_read_cpu_s']} CPU-s of "
        f"{r['load_jets_cpu_s']}; cache hit {r['cache_hit_s']} s)",
        flush=True,
    )
    return r


def _bench_stream(args) -> list[dict]:
    """Peak memory of streamed vs in-memory input (see ``scripts/bench_stream.py``)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_stream import stream_table

    c = args.stream_chunk
    return stream_table(
        args.stream_sizes,
        in_memory_size=max(args.stream_sizes),
        step_size=c,
        buffer_size=c,
        basket_size=c,
    )


def _bench_models(args, ap) -> dict:
    """Train/inference throughput and peak memory of every model (the default suite)."""

    models = args.models or available_models()
    unknown = [m for m in models if m not in available_models()]
    if unknown:
        ap.error(f"unknown models {unknown}; registered: {available_models()}")
    config = json.loads(args.config) if args.config else None
    dtypes = [getattr(torch, d) for d in args.dtypes]
    devices = []
    if args.device in ("auto", "cpu"):
        devices.append("cpu")
    if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            ap.error("--device cuda but no GPU is available")
        devices.append("cuda")
        torch.backends.cuda.matmul.allow_tf32 = False

    rows, flops = [], []
    for device in devices:
        for threads in args.threads if device == "cpu" else [None]:
            if threads:
                torch.set_num_threads(threads)
            for dtype in dtypes:
                for name in models:
                    try:
                        row = bench_model(
                            name,
                            dtype,
                            device,
                            args.batch,
                            args.steps,
                            args.warmup,
                            config,
                            args.procs,
                            args.compile,
                        )
                    except Exception as err:  # keep going: report the failure in the table
                        row = {
                            "model": name,
                            "device": device,
                            "dtype": str(dtype).replace("torch.", ""),
                            "threads": threads,
                            "error": f"{type(err).__name__}: {err}",
                        }
                    rows.append(row)
                    _print_row(row)
                if args.flops_model and args.flops_model in models:
                    peak = peak_matmul_flops(dtype, device)
                    f = count_train_flops(args.flops_model, dtype, device, args.batch, config)
                    r = next(
                        (
                            r
                            for r in rows
                            if r["model"] == args.flops_model
                            and r["device"] == device
                            and r.get("threads") == (threads if device == "cpu" else None)
                            and r["dtype"] == str(dtype).replace("torch.", "")
                            and "train_ms" in r
                        ),
                        None,
                    )
                    achieved = f / (r["train_ms"] / 1e3) if r else math.nan
                    entry = {
                        "model": args.flops_model,
                        "device": device,
                        "threads": threads,
                        "dtype": str(dtype).replace("torch.", ""),
                        "train_step_flops": f,
                        "achieved_flops_per_s": achieved,
                        "peak_matmul_flops_per_s": peak,
                        "fraction_of_peak": achieved / peak,
                    }
                    flops.append(entry)
                    print(
                        f"  FLOPs/train step ({args.flops_model}, {entry['dtype']}, {device}"
                        f"{'' if threads is None else f', {threads} threads'}): {f / 1e9:.3f} GFLOP; "
                        f"achieved {achieved / 1e9:.2f} GFLOP/s of a measured matmul peak "
                        f"{peak / 1e9:.1f} GFLOP/s = {100 * entry['fraction_of_peak']:.1f}%"
                    )
    return {"rows": rows, "flops": flops}


_HEADER = False


def _print_row(r: dict):
    global _HEADER
    if not _HEADER:
        print(
            f"{'model':<10} {'device':<6} {'dtype':<8} {'thr':>3} {'params':>8} {'train j/s':>10} "
            f"{'infer j/s':>10} {'train MB':>9} {'infer MB':>9}"
        )
        _HEADER = True
    if "error" in r:
        print(
            f"{r['model']:<10} {r['device']:<6} {r['dtype']:<8} {str(r.get('threads') or '-'):>3}  "
            f"ERROR {r['error']}"
        )
        return
    print(
        f"{r['model']:<10} {r['device']:<6} {r['dtype']:<8} {str(r['threads'] or '-'):>3} {r['params']:>8} "
        f"{r['train_jets_per_s']:>10.0f} {r['infer_jets_per_s']:>10.0f} {r['train_peak_mb']:>9.1f} "
        f"{r['infer_peak_mb']:>9.1f}",
        flush=True,
    )
    if r.get("infer_procs_jets_per_s"):
        p = f"{r['infer_procs']}x1"
        print(
            f"{'':<10} {'':<6} {'':<8} {p:>3} {'':>8} {'':>10} {r['infer_procs_jets_per_s']:>10.0f}",
            flush=True,
        )
    if r.get("infer_procs_compiled_jets_per_s"):
        info = r.get("infer_procs_compile") or []
        if all(i.get("compiled") for i in info):
            note = f"compiled in {max((i.get('compile_s') or 0.0) for i in info):.0f} s"
        else:
            errors = "; ".join(str(i.get("compile_error")) for i in info if not i.get("compiled"))
            note = f"NOT compiled in every worker: {errors}"
        p = f"{r['infer_procs']}x1c"
        rate = r["infer_procs_compiled_jets_per_s"]
        print(f"{'':<10} {'':<6} {'':<8} {p:>3} {'':>8} {'':>10} {rate:>10.0f}  ({note})", flush=True)


if __name__ == "__main__":
    sys.exit(main())
