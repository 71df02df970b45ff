"""Scoring jets in worker processes, one single-threaded process per core (CPU data parallelism).

Why processes. An LGAE forward is about a thousand small tensor operations: PyTorch runs an operation on
fewer than 32,768 elements on one thread, and the Python between operations holds the GIL, so a second
intra-op thread speeds a 256-jet batch up only ~1.25x (measured: 35-38 ms with 2 threads, 45-48 ms with 1),
and two Python threads gain nothing. Processes that each score their own batches on one thread keep every core
busy all the time: on 2 cores they scored 1.0-1.8x (median 1.35x) as many jets per second as one process
with 2 threads (``python scripts/bench.py``, its ``2x1`` line). Each worker holds a copy of the model and runs
its ``anomaly_score`` (or ``scores``) on whole batches: the values of the calling process, or, with
``compile=True``, the same to rounding (another ~1.2x; the ``2x1c`` line).

Workers start with ``spawn`` by default (a fresh interpreter, ~3 s: safe whatever threads the parent runs).
As with any ``multiprocessing`` code, a script that uses :class:`ProcessScorer` at import level must guard
its entry point with ``if __name__ == "__main__":``.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import pickle
import sys
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor

import numpy as np

__all__ = ["ProcessScorer", "default_workers"]

_METHODS = ("anomaly_score", "scores")

# the worker process's scorer (set by _init_worker)
_WORKER: dict = {}
# a worker's compilation outcome when it does not compile
_EAGER = {"compiled": False, "compile_s": None, "compile_error": None}


def default_workers() -> int:
    """The CPU cores this process may run on (``os.sched_getaffinity``; ``os.cpu_count`` elsewhere)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _init_worker(
    model_bytes: bytes, threads: int, method: str, batch_size: int, example: tuple | None
) -> None:
    import torch

    torch.set_num_threads(threads)
    from lgae.allocator import tune_allocator

    tune_allocator()
    model = pickle.loads(model_bytes)  # bytes pickled by the parent process from its own model, not a file
    model.eval()
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    fn = getattr(model, method)
    info = dict(_EAGER)
    if example is not None:
        fn, info = _compile_checked(fn, *(torch.as_tensor(a) for a in example), dtype)
    _WORKER.update(fn=fn, batch_size=batch_size, dtype=dtype, info=info)


def _as_arrays(s) -> dict | np.ndarray:
    if isinstance(s, Mapping):
        return {k: v.detach().double().numpy() for k, v in s.items()}
    return s.detach().double().numpy()


def _max_rel_diff(a, b) -> float:
    a, b = _as_arrays(a), _as_arrays(b)
    pairs = [(a[k], b[k]) for k in b] if isinstance(b, dict) else [(a, b)]
    d = [np.max(np.abs(x - y) / np.maximum(np.abs(y), 1e-30), initial=0.0) for x, y in pairs]
    return float(max(d, default=0.0))


def _compile_checked(fn, p4, mask, dtype):
    """``torch.compile(fn)`` compiled on one full batch and checked against ``fn`` there; ``fn`` itself (with
    a warning) when compiling fails or the compiled scores differ by more than rounding."""
    import time
    import warnings

    import torch

    info = dict(_EAGER)
    x, m = p4.to(dtype), mask.to(torch.bool)
    try:
        compiled = torch.compile(fn, dynamic=False)
        t0 = time.perf_counter()
        with torch.no_grad():
            got = compiled(x, m)
        info["compile_s"] = time.perf_counter() - t0
        with torch.no_grad():
            diff = _max_rel_diff(got, fn(x, m))
    except Exception as err:  # no C++ compiler, an operation the compiler does not support, ...
        info["compile_error"] = f"{type(err).__name__}: {str(err)[:300]}"
        warnings.warn(f"torch.compile failed, scoring eagerly ({info['compile_error']})", stacklevel=2)
        return fn, info
    # a miscompile gives O(1) differences; a reordering of the arithmetic, the model's rounding sensitivity
    # (float32: up to ~1e-4 relative on a few jets in a thousand, measured)
    tol = max(1e-5, 1e4 * torch.finfo(dtype).eps)
    if not diff <= tol:
        info["compile_error"] = f"compiled scores differ from eager ones by {diff:.3g} (relative) > {tol:.3g}"
        warnings.warn(f"{info['compile_error']}: scoring eagerly", stacklevel=2)
        return fn, info
    info["compiled"] = True
    return compiled, info


def _worker_info() -> dict:
    """This worker's process id and compilation outcome (ready once its initializer has run)."""
    return {"pid": os.getpid(), **_WORKER["info"]}


def _score_task(p4: np.ndarray, mask: np.ndarray):
    """Score one task's jets batch by batch in the worker; a dict of arrays (``scores``) or an array. With a
    compiled scorer the last partial batch is padded with copies of its last jet (one compiled shape)."""
    import torch

    fn, bs, dtype, info = (_WORKER[k] for k in ("fn", "batch_size", "dtype", "info"))
    out: list = []
    with torch.no_grad():
        for start in range(0, p4.shape[0], bs):
            x = torch.as_tensor(p4[start : start + bs], dtype=dtype)
            m = torch.as_tensor(mask[start : start + bs], dtype=torch.bool)
            n = x.shape[0]
            if info["compiled"] and n < bs:
                x = torch.cat([x, x[-1:].expand(bs - n, *x.shape[1:])])
                m = torch.cat([m, m[-1:].expand(bs - n, *m.shape[1:])])
            s = _as_arrays(fn(x, m))
            out.append({k: v[:n] for k, v in s.items()} if isinstance(s, dict) else s[:n])
    if out and isinstance(out[0], dict):
        return {k: np.concatenate([o[k] for o in out]) for k in out[0]}
    return np.concatenate(out) if out else np.zeros(0)


class ProcessScorer:
    """Score jets with a model in ``workers`` processes of ``threads`` intra-op threads each.

    Parameters
    ----------
    model : torch.nn.Module
        A model with ``anomaly_score(p4, mask)`` / ``scores(p4, mask)`` (every registered model), on the CPU.
        Each worker gets a copy (pickled once); later changes to ``model`` do not reach the workers.
    workers : int, optional
        Worker processes (default: the usable CPU cores, :func:`default_workers`).
    method : str
        ``"anomaly_score"`` (one score per jet) or ``"scores"`` (the model's dict of scores).
    threads : int
        Intra-op threads per worker (1: one core each).
    batch_size : int
        Jets per forward call inside a worker.
    task_jets : int
        Jets sent to a worker at a time (a multiple of ``batch_size`` is best): large enough that sending
        them costs nothing next to scoring them, small enough to share the work out evenly.
    start_method : str
        ``"spawn"`` (default), ``"forkserver"`` or ``"fork"`` (fast start; only safe from a parent that runs
        no other threads).
    compile : bool
        Score with ``torch.compile`` (inductor: fused C++ loops instead of a thousand tensor operations;
        measured 1.26-1.44x faster per LGAE batch on one thread). Each worker compiles for one batch shape
        when it starts: about 70 s the first time on a machine, ~10 s once inductor's on-disk cache holds
        the kernels; partial batches are padded to that shape. The compiled scores are checked against the
        eager ones on a synthetic batch (relative difference at most ``max(1e-5, 1e4 eps)``); a worker
        where compiling fails (e.g. no C++ compiler) or the check fails scores eagerly, with a warning
        (:attr:`worker_info` says which).
    n_particles : int, optional
        Particle slots of the jets (for the compile batch; default ``model.n_particles``).

    Examples
    --------
    >>> with ProcessScorer(model, workers=2) as scorer:  # doctest: +SKIP
    ...     s = scorer.score(p4, mask)  # (N,) numpy, the same values as model.anomaly_score
    """

    def __init__(
        self,
        model,
        workers: int | None = None,
        method: str = "anomaly_score",
        threads: int = 1,
        batch_size: int = 256,
        task_jets: int = 4096,
        start_method: str = "spawn",
        compile: bool = False,
        n_particles: int | None = None,
    ):
        if method not in _METHODS:
            raise ValueError(f"method must be one of {_METHODS}; got {method!r}")
        params = list(model.parameters()) + list(model.buffers())
        if any(p.device.type != "cpu" for p in params):
            raise ValueError("ProcessScorer scores on the CPU: move the model there (model.cpu()) first")
        workers = default_workers() if workers is None else int(workers)
        if workers < 1 or threads < 1 or batch_size < 1 or task_jets < 1:
            raise ValueError(
                f"workers, threads, batch_size and task_jets must be >= 1; got {workers}, {threads}, "
                f"{batch_size}, {task_jets}"
            )
        self.workers, self.method, self.threads = workers, method, int(threads)
        self.batch_size = int(batch_size)
        self.task_jets = max(self.batch_size, int(task_jets) // self.batch_size * self.batch_size)
        example = None
        if compile:
            n_particles = n_particles or getattr(model, "n_particles", None)
            if not n_particles:
                raise ValueError("ProcessScorer(compile=True) needs n_particles (the model has none)")
            from .export import example_jets

            # massive synthetic jets: every code path of the scorer is compiled
            example = tuple(a.numpy() for a in example_jets(self.batch_size, int(n_particles), seed=0))
        self.worker_info: list[dict] = []
        self._pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=mp.get_context(start_method),
            initializer=_init_worker,
            initargs=(pickle.dumps(model), self.threads, method, self.batch_size, example),
        )

    def warm_up(self, p4: np.ndarray, mask: np.ndarray, timeout: float = 1800.0) -> list[dict]:
        """Wait until every worker has started (imported, compiled when asked) and run one batch in each,
        e.g. before timing. Returns and keeps (:attr:`worker_info`) each worker's process id and compilation
        outcome (``compiled``, ``compile_s``, ``compile_error``)."""
        import time

        seen: dict[int, dict] = {}
        t_end = time.monotonic() + timeout
        while len(seen) < self.workers:  # a worker takes tasks only once its initializer has finished
            for f in [self._pool.submit(_worker_info) for _ in range(self.workers)]:
                info = f.result(timeout=max(1.0, t_end - time.monotonic()))
                seen[info["pid"]] = info
            if time.monotonic() > t_end:
                raise TimeoutError(f"ProcessScorer: {len(seen)} of {self.workers} workers started")
            time.sleep(0.05)
        n = min(len(p4), self.batch_size)
        for f in [self._pool.submit(_score_task, p4[:n], mask[:n]) for _ in range(self.workers)]:
            f.result()
        self.worker_info = list(seen.values())
        return self.worker_info

    def score(self, p4, mask, progress: bool = False, desc: str = "scoring"):
        """Scores of ``p4 (N, n, 4)`` with ``mask (N, n)`` (numpy arrays or tensors), in input order.

        Returns an ``(N,)`` float64 array (``anomaly_score``) or a dict of them (``scores``).
        """
        p4 = _as_numpy(p4, "p4")
        mask = _as_numpy(mask, "mask").astype(bool, copy=False)
        if p4.ndim != 3 or p4.shape[-1] != 4 or mask.shape != p4.shape[:2]:
            raise ValueError(
                f"ProcessScorer.score expects p4 (N, n, 4) and mask (N, n); got {p4.shape} and {mask.shape}"
            )
        n = p4.shape[0]
        if n == 0:
            return np.zeros(0) if self.method == "anomaly_score" else {}
        # whole batches per task (the batches of an in-process loop), at least one task per worker when
        # there are jets enough to share
        per_worker = self.batch_size * math.ceil(n / self.workers / self.batch_size)
        step = min(self.task_jets, per_worker)
        starts = range(0, n, step)
        futures = [self._pool.submit(_score_task, p4[s : s + step], mask[s : s + step]) for s in starts]
        from tqdm.auto import tqdm

        bar = tqdm(
            total=n, desc=desc, unit="jet", disable=not progress or not sys.stderr.isatty(), leave=False
        )
        parts = []
        for s, f in zip(starts, futures):
            parts.append(f.result())
            bar.update(min(step, n - s))
        bar.close()
        if isinstance(parts[0], dict):
            return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        return np.concatenate(parts)

    def close(self) -> None:
        """Stop the workers."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _as_numpy(x, name: str) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    if not isinstance(x, np.ndarray):
        raise TypeError(
            f"ProcessScorer.score: {name} must be a numpy array or a tensor, got {type(x).__name__}"
        )
    return x
