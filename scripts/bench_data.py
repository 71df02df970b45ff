"""Reader throughput: jets per second that ``lgae.data.load_jets`` converts from a local ROOT file.

    python scripts/bench_data.py                       # 100k jets x 1..60 particles, ZLIB (uproot's default)
    python scripts/bench_data.py --compression lz4     # the same file compressed with LZ4
    python scripts/bench_data.py --file data/qcd.root  # an existing file

Prints one JSON line: best-of-N wall-clock and CPU seconds and jets/s of ``load_jets`` (no cache), and of the
bare ``uproot`` read of the four particle branches, so the decompression and conversion costs can be told
apart (CPU time is the fairer number on a shared machine), and, for the synthetic file, the time of a cache
hit.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time


def synthetic_file(path: str, n_jets: int, max_particles: int, compression: str, seed: int = 0) -> str:
    """``n_jets`` jets with 1..max_particles massive constituents (float64), weaver branch names."""
    import awkward as ak
    import numpy as np
    import uproot

    rng = np.random.default_rng(seed)
    counts = rng.integers(1, max_particles + 1, n_jets)
    m = int(counts.sum())
    px, py, pz = (rng.normal(0, 20, m) for _ in range(3))
    e = np.sqrt(px**2 + py**2 + pz**2 + 0.14**2)
    part = ak.zip(
        {k: ak.unflatten(v, counts) for k, v in {"px": px, "py": py, "pz": pz, "energy": e}.items()}
    )
    codec = {"zlib": uproot.ZLIB(1), "lz4": uproot.LZ4(1), "zstd": uproot.ZSTD(1), "none": None}[compression]
    with uproot.recreate(path, compression=codec) as f:
        f.mktree("tree", {"part": part, "label": np.zeros(n_jets, dtype=np.int32)})
    return path


def _best(fn, repeat: int) -> tuple[float, float]:
    """Best wall-clock and best CPU seconds (this process, all threads) of ``repeat`` calls."""
    wall = cpu = float("inf")
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall, cpu = min(wall, time.perf_counter() - t0), min(cpu, time.process_time() - c0)
    return wall, cpu


def bench_reader(
    n_jets: int = 100_000,
    max_particles: int = 60,
    n_particles: int = 30,
    compression: str = "zlib",
    file: str | None = None,
    repeat: int = 3,
) -> dict:
    """Best-of-``repeat`` seconds and jets/s of :func:`lgae.data.load_jets` (and of the bare uproot read)."""
    import uproot

    from lgae.data import load_jets

    with tempfile.TemporaryDirectory() as tmp:
        path = file or synthetic_file(os.path.join(tmp, "bench.root"), n_jets, max_particles, compression)
        n = len(load_jets(path, n_particles=n_particles))
        branches = ["part_px", "part_py", "part_pz", "part_energy"]

        def bare():
            with uproot.open(path) as f:
                tree = f[[k for k, c in f.classnames(cycle=False).items() if c == "TTree"][0]]
                for _ in tree.iterate(filter_name=branches, step_size=100_000):
                    pass

        t_load, cpu_load = _best(lambda: load_jets(path, n_particles=n_particles), repeat)
        t_bare, cpu_bare = _best(bare, repeat)
        t_hit = None
        if file is None:  # a cache hit (what a second training run pays); not for a user's file (no litter)
            load_jets(path, n_particles=n_particles, cache=True)
            t_hit, _ = _best(lambda: load_jets(path, n_particles=n_particles, cache=True), repeat)
        size = os.path.getsize(path)
    return {
        "file": file or f"synthetic {n_jets} jets x 1..{max_particles} particles, {compression}",
        "file_MB": round(size / 1e6, 1),
        "n_jets": n,
        "n_particles": n_particles,
        "load_jets_s": round(t_load, 3),
        "jets_per_s": round(n / t_load),
        "load_jets_cpu_s": round(cpu_load, 3),
        "jets_per_cpu_s": round(n / cpu_load),
        "uproot_read_s": round(t_bare, 3),
        "uproot_read_cpu_s": round(cpu_bare, 3),
        "conversion_cpu_s": round(cpu_load - cpu_bare, 3),
        "cache_hit_s": None if t_hit is None else round(t_hit, 3),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n-jets", type=int, default=100_000)
    parser.add_argument("--max-particles", type=int, default=60)
    parser.add_argument("--n-particles", type=int, default=30)
    parser.add_argument("--compression", choices=("zlib", "lz4", "zstd", "none"), default="zlib")
    parser.add_argument("--file", help="benchmark an existing ROOT file instead of a synthetic one")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    print(
        json.dumps(
            bench_reader(
                args.n_jets, args.max_particles, args.n_particles, args.compression, args.file, args.repeat
            )
        )
    )


if __name__ == "__main__":
    main()
