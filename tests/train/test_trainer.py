"""The trainer: kill-and-resume reproducibility, early stopping, checkpoints, run directory, NaN handling."""

from __future__ import annotations

import csv
import json
import math
import pickle

import pytest
import torch
from train_helpers import TinyJetAE

from lgae.train import ConfigError, Trainer, TrainingError, load_checkpoint, load_run, save_checkpoint
from lgae.train.config import TrainerConfig
from lgae.train.trainer import METRICS_COLUMNS, LRSchedule


class Interrupt(Exception):
    pass


def interrupt_after(k):
    def callback(epoch, trainer):
        if epoch == k:
            raise Interrupt(f"killed after epoch {k}")

    return callback


def make_model(seed=0, **kw):
    torch.manual_seed(seed)
    return TinyJetAE(**kw)


def fit(jets, run_dir, model_kw=None, callbacks=(), resume=True, **cfg):
    cfg = {
        "epochs": 6,
        "batch_size": 32,
        "lr": 1e-2,
        "progress": False,
        "patience": None,
        "num_threads": 1,
        **cfg,
    }
    trainer = Trainer(make_model(**(model_kw or {})), *jets, cfg, run_dir, callbacks=callbacks, resume=resume)
    trainer.fit()
    return trainer


def assert_same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), f"{k} differs by {(sa[k] - sb[k]).abs().max().item():.3e}"


RANDOM_MODEL = {"dropout": 0.2, "noise": 0.1, "host_rng": True}


@pytest.mark.parametrize(
    "model_kw, kill_at, extra",
    [
        ({}, 2, {}),
        (RANDOM_MODEL, 3, {}),  # dropout (torch RNG), latent noise, numpy + python RNG draws
        (
            RANDOM_MODEL,
            3,
            {"checkpoint_every": 2, "lr_schedule": "plateau", "warmup_epochs": 1},
        ),  # redo epoch 3
        (
            {},
            2,
            {
                "lr_schedule": "cosine",
                "grad_clip": 0.5,
                "optimizer": "adamw",
                "weight_decay": 1e-2,
                "dtype": "float64",
            },
        ),
    ],
    ids=["plain", "random-model", "sparse-checkpoints", "cosine-adamw-f64"],
)
def test_kill_and_resume_gives_identical_weights(tmp_path, jets, model_kw, kill_at, extra):
    ref = fit(jets, tmp_path / "ref", model_kw, **extra)
    with pytest.raises(Interrupt):
        fit(jets, tmp_path / "crash", model_kw, callbacks=[interrupt_after(kill_at)], **extra)
    expected_epoch = kill_at - kill_at % extra.get("checkpoint_every", 1)
    assert load_checkpoint(tmp_path / "crash" / "checkpoints" / "last.pt")["epoch"] == expected_epoch
    # a fresh process would build a new (differently initialised) model: resuming must overwrite everything
    torch.manual_seed(99)
    resumed = fit(jets, tmp_path / "crash", model_kw, **extra)
    assert resumed.resumed_from == expected_epoch
    assert_same_weights(ref.model, resumed.model)
    assert [h["val_loss"] for h in ref.history] == [h["val_loss"] for h in resumed.history]
    assert [h["train_loss"] for h in ref.history] == [h["train_loss"] for h in resumed.history]
    assert ref.best_epoch == resumed.best_epoch and ref.best_val == resumed.best_val
    last_ref = load_checkpoint(tmp_path / "ref" / "checkpoints" / "last.pt")["model"]
    last_res = load_checkpoint(tmp_path / "crash" / "checkpoints" / "last.pt")["model"]
    assert all(torch.equal(last_ref[k], last_res[k]) for k in last_ref)


def test_same_seed_same_run_and_other_seed_differs(tmp_path, jets):
    a = fit(jets, tmp_path / "a", RANDOM_MODEL, epochs=2)
    b = fit(jets, tmp_path / "b", RANDOM_MODEL, epochs=2)
    c = fit(jets, tmp_path / "c", RANDOM_MODEL, epochs=2, seed=1)
    assert_same_weights(a.model, b.model)
    assert a.history[-1]["train_loss"] != c.history[-1]["train_loss"]


def test_validation_loss_decreases_on_learnable_problem(tmp_path, jets):
    t = fit(jets, tmp_path / "run", epochs=15, lr=5e-3)
    val = [h["val_loss"] for h in t.history]
    assert val[-1] < 0.3 * val[0]
    assert t.best_val == min(val)


def test_early_stopping_and_best_checkpoint(tmp_path, jets):
    # min_delta larger than any improvement: only the first epoch counts as progress
    t = fit(jets, tmp_path / "run", epochs=20, patience=3, min_delta=1e6)
    assert t.stopped_early and t.epoch == 4 and len(t.history) == 4
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["stopped_early"] is True and run["epochs_completed"] == 4

    t = fit(jets, tmp_path / "run2", epochs=8, lr=3e-2)
    val = [h["val_loss"] for h in t.history]
    best = torch.load(tmp_path / "run2" / "checkpoints" / "best.pt", weights_only=True)
    assert best["epoch"] == val.index(min(val)) + 1 == t.best_epoch
    assert best["val_loss"] == min(val)
    # the best checkpoint really holds the weights that gave that validation loss
    model, _ = load_run(tmp_path / "run2", "best")
    t.model.load_state_dict(best["model"])
    assert t.validation_loss() == pytest.approx(min(val), rel=1e-6)
    assert not t.stopped_early


def test_checkpoints_weights_only_atomic_and_rebuildable(tmp_path, jets):
    run_dir = tmp_path / "run"
    t = fit(jets, run_dir, epochs=3, model_kw={"dropout": 0.1})
    for name in ("best", "last"):
        ckpt = torch.load(run_dir / "checkpoints" / f"{name}.pt", weights_only=True)
        assert ckpt["config"]["trainer"]["epochs"] == 3
    assert not [p for p in run_dir.rglob("*") if p.name.endswith(".tmp")]
    # a failed write leaves the previous file intact and no temporary file behind
    before = (run_dir / "checkpoints" / "last.pt").read_bytes()
    with pytest.raises((AttributeError, TypeError, pickle.PicklingError)):
        save_checkpoint({"bad": lambda: 0}, run_dir / "checkpoints" / "last.pt")
    assert (run_dir / "checkpoints" / "last.pt").read_bytes() == before
    assert not [p for p in run_dir.rglob("*") if p.name.endswith(".tmp")]
    # the run directory rebuilds the model (config.yaml + checkpoint) with identical outputs
    model, config = load_run(run_dir, "last")
    assert config["model"]["name"] == "test-mlp-ae" and not model.training
    p4, mask = jets[1]
    t.model.eval()
    with torch.no_grad():
        assert torch.equal(model(p4, mask).p4, t.model(p4, mask).p4)
        assert torch.equal(model.anomaly_score(p4, mask), t.model.anomaly_score(p4, mask))


def test_run_directory_contents(tmp_path, jets):
    run_dir = tmp_path / "run"
    t = fit(jets, run_dir, epochs=3, max_steps_per_epoch=2)
    with open(run_dir / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == METRICS_COLUMNS and [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert [float(r["val_loss"]) for r in rows] == [h["val_loss"] for h in t.history]  # full precision
    assert len(json.loads((run_dir / "metrics_epochs.json").read_text())) == 3
    run = json.loads((run_dir / "run.json").read_text())
    for key in (
        "lgae_version",
        "torch_version",
        "model",
        "n_params",
        "latent_dim",
        "input_dim",
        "seed",
        "total_train_time_s",
        "mean_train_jets_per_s",
        "best_epoch",
        "best_val_loss",
        "stopped_early",
    ):
        assert key in run, key
    assert run["latent_dim"] == 3 and run["input_dim"] == 16 and run["n_params"] == t.model.n_params
    assert (run_dir / "config.yaml").is_file()
    assert t.history[0]["train_jets"] == 2 * 32  # max_steps_per_epoch caps the steps


def test_nan_loss_stops_with_epoch_and_keeps_last_good_checkpoint(tmp_path, jets):
    def poison(epoch, trainer):
        if epoch == 2:
            with torch.no_grad():
                trainer.model.dec[0].weight.fill_(float("nan"))

    with pytest.raises(TrainingError, match="epoch 3"):
        fit(jets, tmp_path / "run", callbacks=[poison])
    last = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert last["epoch"] == 2
    assert all(torch.isfinite(v).all() for v in last["model"].values())


def test_resume_with_other_config_is_refused_and_restart_starts_over(tmp_path, jets):
    with pytest.raises(Interrupt):
        fit(jets, tmp_path / "run", callbacks=[interrupt_after(1)])
    with pytest.raises(ConfigError, match="lr.*restart"):
        fit(jets, tmp_path / "run", lr=0.5)
    t = fit(jets, tmp_path / "run", epochs=8)  # more epochs: allowed, continues
    assert t.resumed_from == 1 and t.epoch == 8
    t = fit(jets, tmp_path / "run", lr=0.5, epochs=2, resume=False)
    assert t.resumed_from is None and t.epoch == 2
    # a finished run resumes to "nothing to do"
    t = fit(jets, tmp_path / "run", lr=0.5, epochs=2)
    assert t.resumed_from == 2 and len(t.history) == 2


def test_stop_request_from_callback(tmp_path, jets):
    def stop(epoch, trainer):
        if epoch == 2:
            trainer.stop_requested = True

    t = fit(jets, tmp_path / "run", callbacks=[stop], checkpoint_every=5)
    assert t.epoch == 2 and load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["epoch"] == 2


def test_float64_training(tmp_path, jets):
    t = fit(jets, tmp_path / "run", epochs=1, dtype="float64")
    assert all(p.dtype == torch.float64 for p in t.model.parameters())
    model, _ = load_run(tmp_path / "run")
    assert next(model.parameters()).dtype == torch.float64


def test_lr_schedules():
    def lrs(**kw):
        s = LRSchedule(TrainerConfig.from_dict({"epochs": 10, "lr": 1.0, **kw}))
        return [s.lr(e) for e in range(10)]

    assert lrs() == [1.0] * 10
    assert lrs(warmup_epochs=3)[:4] == [0.25, 0.5, 0.75, 1.0]
    cos = lrs(lr_schedule="cosine", lr_schedule_params={"eta_min": 0.1})
    assert cos[0] == 1.0 and all(a > b for a, b in zip(cos, cos[1:])) and cos[-1] > 0.1
    assert (
        lrs(lr_schedule="step", lr_schedule_params={"step_size": 4, "gamma": 0.5})
        == [1.0] * 4 + [0.5] * 4 + [0.25] * 2
    )
    s = LRSchedule(
        TrainerConfig.from_dict(
            {"lr": 1.0, "lr_schedule": "plateau", "lr_schedule_params": {"patience": 1, "factor": 0.1}}
        )
    )
    for e, v in enumerate([1.0, 0.5, 0.6, 0.6, 0.6]):
        s.step(e, v)
    assert s.lr(5) == pytest.approx(0.1)
    state = s.state_dict()
    s2 = LRSchedule(TrainerConfig.from_dict({"lr": 1.0, "lr_schedule": "plateau"}))
    s2.load_state_dict(state)
    assert s2.lr(5) == s.lr(5)


def test_bad_data_is_rejected(tmp_path, jets):
    (p4, mask), val = jets
    with pytest.raises(ValueError, match="empty"):
        Trainer(make_model(), (p4, mask), (p4[:0], mask[:0]), {"progress": False}, tmp_path)
    with pytest.raises(ValueError, match="lengths"):
        Trainer(make_model(), (p4, mask[:-1]), val, {"progress": False}, tmp_path)


def test_progress_bar_off_the_terminal_logs_epochs(tmp_path, jets, caplog):
    caplog.set_level("INFO", logger="lgae.train")
    fit(jets, tmp_path / "run", epochs=2, progress=True)
    assert sum("epoch" in r.message for r in caplog.records) >= 2
    assert math.isfinite(json.loads((tmp_path / "run" / "run.json").read_text())["best_val_loss"])


def test_time_budget_stops_cleanly(tmp_path, jets):
    """trainer.time_budget_s ends the training after the epoch that would overrun it, with the usual files."""
    run_dir = tmp_path / "budget"
    t = fit(jets, run_dir, epochs=50, max_steps_per_epoch=1, time_budget_s=1e-9)
    assert len(t.history) == 1  # the first epoch always runs; its duration already exceeds the budget
    assert (run_dir / "checkpoints" / "last.pt").is_file()
    assert json.loads((run_dir / "run.json").read_text())["total_train_time_s"] > 0
    with pytest.raises(ConfigError, match="time_budget_s"):
        TrainerConfig.from_dict({"time_budget_s": -1})
