"""scripts/bench.py runs end to end (tiny sizes) and writes the JSON it promises."""

from __future__ import annotations

import json

import torch


def test_bench_models_and_reader_write_json(tmp_path, load_script):
    bench = load_script("bench")
    threads = torch.get_num_threads()
    out = tmp_path / "bench.json"
    try:
        rc = bench.main(
            [
                "--models", "vae", "lgae", "--dtypes", "float32", "--threads", "1", "--device", "cpu",
                "--batch", "16", "--steps", "1", "--warmup", "0",
                "--suite", "models", "reader", "--reader-jets", "2000", "--out", str(out),
            ]
        )  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    assert rc == 0
    res = json.loads(out.read_text())
    rows = {r["model"]: r for r in res["rows"]}
    assert set(rows) == {"vae", "lgae"}
    for r in rows.values():
        assert "error" not in r, r
        assert r["train_jets_per_s"] > 0 and r["infer_jets_per_s"] > 0 and r["params"] > 0
    (fl,) = res["flops"]
    assert fl["model"] == "lgae" and fl["train_step_flops"] > 0 and 0 < fl["fraction_of_peak"]
    rd = res["reader"]
    assert rd["n_jets"] == 2000 and rd["jets_per_s"] > 0 and rd["n_particles"] == 30
