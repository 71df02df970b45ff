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
                "--batch", "16", "--steps", "1", "--warmup", "0", "--procs", "2",
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
        # inference in 2 worker processes
        assert r["infer_procs"] == 2 and r["infer_procs_jets_per_s"] > 0
    (fl,) = res["flops"]
    assert fl["model"] == "lgae" and fl["train_step_flops"] > 0 and 0 < fl["fraction_of_peak"]
    rd = res["reader"]
    assert rd["n_jets"] == 2000 and rd["jets_per_s"] > 0 and rd["n_particles"] == 30


def test_bench_ab_compares_with_a_git_revision(tmp_path, load_script, capsys):
    # the working tree against its own HEAD: both versions load, share weights, score the same jets
    ab = load_script("bench_ab")
    threads = torch.get_num_threads()
    out = tmp_path / "ab.json"
    try:
        cfg = '{"aggregation": "minmax", "tau_vectors": 2}'
        rc = ab.main(["--ref", "HEAD", "--batch", "8", "--pairs", "2", "--warmup", "0", "--threads", "1",
                      "--config", cfg, "--out", str(out)])  # fmt: skip
        assert rc == 0
        res = json.loads(out.read_text())
        assert res["ref"] == "HEAD" and res["speedup"] > 0 and res["cur_ms"] > 0 and res["ref_ms"] > 0
        assert res["max_rel_score_diff"] < 1e-4  # same code, same weights: the same scores
        assert (
            ab.main(["--ref", "HEAD", "--mode", "train", "--batch", "8", "--pairs", "1", "--threads", "1"])
            == 0
        )
        assert ab.main(["--ref", "no-such-revision", "--pairs", "1"]) == 2
    finally:
        torch.set_num_threads(threads)
    assert "git archive 'no-such-revision' failed" in capsys.readouterr().err
