#!/usr/bin/env python
"""Peak memory of streaming vs reading into memory: synthetic ROOT files of growing size.

Writes a synthetic file per size (not kept), streams it through ``lgae.data.stream.StreamingJets`` in a fresh
process and reports the peak resident-memory growth (total, and anonymous = allocated by the process; the
total also counts the memory-mapped file pages uproot read). ``--in-memory`` adds ``lgae.data.load_jets`` for
the smallest size.

Examples::

    python scripts/bench_stream.py                                  # 200k and 1M jets, default step/buffer
    python scripts/bench_stream.py --sizes 200000 1000000 --step-size 20000 --buffer-size 20000 \\
        --basket-size 20000 --in-memory --out stream_mem.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lgae.data.stream import bench_stream_memory  # noqa: E402


def stream_table(sizes, *, in_memory_size: int | None = None, **kw) -> list[dict]:
    """Run :func:`bench_stream_memory` for each size (``in_memory_size`` also reads that one into memory) and
    print a row per mode."""
    rows = []
    print(f"{'jets':>9} {'file MB':>8} {'mode':>9} {'peak +MB':>9} {'anon +MB':>9} {'jets/s':>9}")
    for n in sorted(sizes):
        r = bench_stream_memory(n, in_memory=n == in_memory_size, **kw)
        rows.append(r)
        for mode in ("stream", "in_memory"):
            if mode in r:
                m = r[mode]
                anon = m["peak_anon_growth_mb"]
                print(
                    f"{n:>9} {r['file_mb']:>8.0f} {mode:>9} {m['peak_growth_mb']:>9.0f} "
                    f"{anon if anon is None else round(anon):>9} {m['jets_per_s']:>9.0f}",
                    flush=True,
                )
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[200_000, 1_000_000])
    ap.add_argument("--n-particles", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--buffer-size", type=int, default=100_000)
    ap.add_argument("--step-size", type=int, default=None)
    ap.add_argument("--basket-size", type=int, default=100_000)
    ap.add_argument("--in-memory", action="store_true", help="also time load_jets on the smallest size")
    ap.add_argument("--workdir", default=None, help="where the temporary files go (default: system temp)")
    ap.add_argument("--out", help="write the results as JSON")
    args = ap.parse_args(argv)
    rows = stream_table(
        args.sizes,
        in_memory_size=min(args.sizes) if args.in_memory else None,
        n_particles=args.n_particles,
        batch_size=args.batch_size,
        buffer_size=args.buffer_size,
        step_size=args.step_size,
        basket_size=args.basket_size,
        workdir=args.workdir,
    )
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
