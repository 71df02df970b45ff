"""Distributed data-parallel training: two gloo ranks on CPU against the single-process trainer.

The ranks are started the way torchrun starts them (RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR /
MASTER_PORT in the environment) by :func:`launch`, each running ``dist_worker.py``; the full
``lgae train --nproc 2`` path through torch's elastic launcher is the slow test at the end.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from dist_worker import N_PARTICLES, build, data, fingerprint, trainer_config

from lgae.train import distributed
from lgae.train.checkpoint import load_checkpoint
from lgae.train.trainer import Trainer

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
WORLD = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(spec: dict, tmp: Path, world: int = WORLD, timeout: float = 240) -> list[dict]:
    """Start ``world`` ranks of dist_worker.py with torchrun's environment; returns their results by rank."""
    out = tmp / f"out_{len(list(tmp.glob('out_*')))}"
    out.mkdir()
    spec_path = out / "spec.json"
    spec_path.write_text(json.dumps({**spec, "out": str(out)}))
    port = _free_port()
    procs = []
    for rank in range(world):
        env = {
            **os.environ,
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": str(world),
            "LOCAL_WORLD_SIZE": str(world),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "OMP_NUM_THREADS": "1",
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE)]),
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, str(HERE / "dist_worker.py"), str(spec_path)],
                env=env,
                cwd=tmp,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    logs = []
    try:
        for p in procs:
            logs.append(p.communicate(timeout=timeout)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for rank, (p, log) in enumerate(zip(procs, logs)):
        assert p.returncode == 0, f"rank {rank} failed:\n{log[-4000:]}"
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(world)]


def reference(run_dir: Path, epochs: int, batch_size: int):
    """The single-process run with the same global batch; returns (trainer, seen fingerprints per step)."""
    train, val = data()
    t = Trainer(build(), train, val, trainer_config({"epochs": epochs, "batch_size": batch_size}), run_dir)
    t.fit()
    return t


def _keys(rows) -> set:
    return {round(v, 9) for row in rows for v in row}


@pytest.fixture(scope="module")
def ddp_runs(tmp_path_factory):
    """One launch of 2 ranks: 1 epoch, then the run dir resumed to 2 epochs by new trainers, then a stream."""
    tmp = tmp_path_factory.mktemp("ddp")
    from lgae.data.stream import write_synthetic_root

    root = write_synthetic_root(tmp / "stream.root", 1000, n_max=6, seed=3)
    stream = {"path": root, "run_dir": str(tmp / "stream_run"), "batch_size": 64, "step_size": 300}
    spec = {"run_dir": str(tmp / "run"), "epochs": 1, "resume_to": 2, "batch_size": 64, "stream": stream}
    results = launch(spec, tmp)
    first = [{**r["phases"][0], "world": r["world"], "threads": r["threads"], **_stream(r)} for r in results]
    second = [r["phases"][1] for r in results]
    return tmp, first, second


def _stream(r: dict) -> dict:
    return {k: v for k, v in r.items() if k.startswith("stream")}


def test_shard_is_a_strided_partition():
    batch = torch.arange(11)
    parts = [distributed.shard(batch, r, 3) for r in range(3)]
    assert sorted(torch.cat(parts).tolist()) == list(range(11))
    assert [len(p) for p in parts] == [4, 4, 3]


def test_ranks_see_disjoint_data_covering_the_epoch(ddp_runs, tmp_path):
    _, first, _ = ddp_runs
    r0, r1 = (_keys(r["seen"]) for r in first)
    assert r0 and r1 and not r0 & r1
    ref = reference(tmp_path / "ref", 1, 64)
    train, _ = data()
    expected = set()
    for idx in ref._epoch_batches(0):
        expected |= _keys([fingerprint(train[0][idx].double())])
    assert r0 | r1 == expected
    assert len(first[0]["seen"]) == len(first[1]["seen"]) == len(ref._epoch_batches(0))  # same steps
    assert first[0]["world"] == WORLD and first[0]["threads"] == 1


def test_one_epoch_matches_single_process_with_the_same_global_batch(ddp_runs, tmp_path):
    tmp, first, _ = ddp_runs
    ref = reference(tmp_path / "ref", 1, 64)
    for res in first:  # every rank holds the all-reduced metrics
        h = res["history"][0]
        assert h["train_loss"] == pytest.approx(ref.history[0]["train_loss"], rel=1e-9, abs=0)
        assert h["val_loss"] == pytest.approx(ref.history[0]["val_loss"], rel=1e-9, abs=0)
        assert h["train_jets"] == ref.history[0]["train_jets"]
    # the 255 jets in batches of 64 end with 63: unequal slices (32 / 31) are weighted exactly
    assert [len(b) for b in ref._epoch_batches(0)][-1] == 63


def test_only_rank_zero_writes_one_run_directory(ddp_runs):
    tmp, first, second = ddp_runs
    for launch_results in (first, second):
        assert launch_results[1]["writes"] == []
        written = {Path(p).name for p in launch_results[0]["writes"]}
        assert {"config.yaml", "last.pt", "best.pt", "metrics.csv", "run.json"} <= written
    run = tmp / "run"
    assert sorted(p.name for p in run.iterdir()) == [
        "checkpoints",
        "config.yaml",
        "metrics.csv",
        "metrics_epochs.json",
        "run.json",
    ]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.pt", "last.pt"]
    assert json.loads((run / "run.json").read_text())["world_size"] == WORLD


def test_resume_continues_like_an_uninterrupted_single_process_run(ddp_runs, tmp_path):
    tmp, _, second = ddp_runs
    assert second[0]["summary"]["resumed_from_epoch"] == 1
    assert [len(r["history"]) for r in second] == [2, 2]
    ref = reference(tmp_path / "ref2", 2, 64)
    for got, want in zip(second[0]["history"], ref.history):
        assert got["train_loss"] == pytest.approx(want["train_loss"], rel=1e-9, abs=0)
        assert got["val_loss"] == pytest.approx(want["val_loss"], rel=1e-9, abs=0)
    state = load_checkpoint(tmp / "run" / "checkpoints" / "last.pt")
    for name, value in ref.model.state_dict().items():
        torch.testing.assert_close(state["model"][name], value, rtol=1e-9, atol=1e-12)


def test_streamed_shards_of_unequal_size_take_the_same_number_of_steps(ddp_runs):
    _, first, _ = ddp_runs
    steps = [r["stream_steps"] for r in first]
    assert steps[0] == steps[1] > 0
    assert all(len(r["stream_history"]) == 2 for r in first)
    assert first[0]["stream_history"][-1]["train_jets"] > 0


@pytest.mark.slow
def test_lgae_train_nproc_two_through_torchrun(tmp_path):
    """``lgae train --nproc 2`` (torch's elastic launcher) on a ROOT file equals the single-process run."""
    from lgae.data.stream import write_synthetic_root

    write_synthetic_root(tmp_path / "qcd.root", 600, n_max=12, seed=1)
    cfg = {
        "data": {"train": str(tmp_path / "qcd.root"), "n_particles": N_PARTICLES + 4, "cache": False},
        "model": {"name": "gnnae-pl", "node_sizes": [4, 4], "edge_sizes": [[8], [8]]},
        "trainer": {"epochs": 1, "batch_size": 100, "progress": False, "dtype": "float64", "num_threads": 1},
    }
    import yaml

    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    runs = {}
    for label, extra in (("ddp", ["--nproc", "2"]), ("single", [])):
        out = tmp_path / label
        cmd = [sys.executable, "-m", "lgae", "train", "--config", "cfg.yaml", f"trainer.out={out}", *extra]
        proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-4000:]
        assert proc.stdout.strip().splitlines().count(str(out)) == 1  # printed once, by rank 0
        runs[label] = (out / "metrics.csv").read_text().splitlines()[1].split(",")
    assert float(runs["ddp"][1]) == pytest.approx(float(runs["single"][1]), rel=1e-9)
    assert float(runs["ddp"][2]) == pytest.approx(float(runs["single"][2]), rel=1e-9)
