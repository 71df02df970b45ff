"""train(config) wiring, several seeds, load_run and the `lgae train` command line (on synthetic data)."""

from __future__ import annotations

import argparse
import json

import pytest
import torch
import yaml
from train_helpers import FEATURE_MODEL, JET_MODEL, base_config

from lgae.train import ConfigError, load_run, parse_seeds, train, train_seeds


def test_train_wires_config_data_model_and_trainer(tmp_path, fake_data):
    cfg = base_config(tmp_path, seed=3)
    cfg["data"]["n_particles"] = 5
    run_dir = train(cfg)
    assert run_dir == tmp_path / "run"
    assert fake_data == [({"train": "fake.root", "n_particles": 5}, 3)]  # data built with the run's seed
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["model"]["n_particles"] == 5  # filled from the data
    assert saved["trainer"]["seed"] == 3 and saved["trainer"]["patience"] == 20 and saved["name"] == "tiny"
    run = json.loads((run_dir / "run.json").read_text())
    assert run["model"] == JET_MODEL and run["input_dim"] == 20 and run["seed"] == 3
    model, config = load_run(run_dir)
    assert config == saved and model.n_particles == 5
    # same config again: the finished run is found and nothing is retrained
    mtime = (run_dir / "checkpoints" / "best.pt").stat().st_mtime_ns
    train(cfg)
    assert (run_dir / "checkpoints" / "best.pt").stat().st_mtime_ns == mtime


def test_model_initialisation_is_seeded(tmp_path, fake_data):
    a = train(base_config(tmp_path / "a", epochs=1))
    b = train(base_config(tmp_path / "b", epochs=1))
    ma, _ = load_run(a, "last")
    mb, _ = load_run(b, "last")
    assert all(torch.equal(x, y) for x, y in zip(ma.state_dict().values(), mb.state_dict().values()))


def test_feature_data_fill_n_features(tmp_path, fake_data):
    cfg = base_config(tmp_path)
    cfg["data"] = {"toy": "line", "kind": "features"}
    cfg["model"] = {"name": FEATURE_MODEL, "n_features": "auto"}
    run_dir = train(cfg, run_dir=tmp_path / "toy")
    model, config = load_run(run_dir)
    assert config["model"]["n_features"] == 3 and model.n_features == 3
    hist = json.loads((run_dir / "metrics_epochs.json").read_text())
    assert hist[-1]["val_loss"] < hist[0]["val_loss"]


def test_input_kind_mismatch_is_explained(tmp_path, fake_data):
    cfg = base_config(tmp_path)
    cfg["data"] = {"toy": "line", "kind": "features"}
    with pytest.raises(ConfigError, match="consumes jets"):
        train(cfg)


def test_train_seeds_one_dir_per_seed(tmp_path, fake_data):
    dirs = train_seeds(base_config(tmp_path, epochs=1), "0,2")
    assert dirs == [tmp_path / "run" / "seed0", tmp_path / "run" / "seed2"]
    seeds = [yaml.safe_load((d / "config.yaml").read_text())["trainer"]["seed"] for d in dirs]
    assert seeds == [0, 2]
    a, _ = load_run(dirs[0])
    b, _ = load_run(dirs[1])
    assert not torch.equal(a.enc[0].weight, b.enc[0].weight)
    assert parse_seeds("0-2,5") == [0, 1, 2, 5]
    with pytest.raises(ConfigError):
        parse_seeds("1,1")


def main(argv):
    """`lgae <argv>` with only the train subcommand registered (the others belong to other layers)."""
    from lgae.train import cli

    parser = argparse.ArgumentParser(prog="lgae")
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_train(tmp_path, fake_data, capsys):
    base = tmp_path / "base.yaml"
    base.write_text(
        yaml.safe_dump({"data": {"train": "bg.root", "n_particles": 4}, "trainer": {"epochs": 5}})
    )
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump({"defaults": ["base.yaml"], "model": {"name": JET_MODEL, "tau": 2}}))
    out = tmp_path / "runs" / "x"
    rc = main(
        [
            "train",
            "--config",
            str(cfg),
            "data.train=qcd.root",
            "trainer.epochs=2",
            f"trainer.out={out}",
            "trainer.progress=false",
            "trainer.num_threads=1",
        ]
    )
    assert rc == 0
    assert capsys.readouterr().out.strip() == str(out)
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["data"]["train"] == "qcd.root" and saved["trainer"]["epochs"] == 2
    assert len(json.loads((out / "metrics_epochs.json").read_text())) == 2

    rc = main(
        [
            "train",
            "--config",
            str(cfg),
            "--seeds",
            "0,1",
            "--run-dir",
            str(tmp_path / "multi"),
            "trainer.epochs=1",
            "trainer.progress=false",
            "trainer.num_threads=1",
        ]
    )
    assert rc == 0
    assert capsys.readouterr().out.split() == [str(tmp_path / "multi" / f"seed{s}") for s in (0, 1)]

    rc = main(["train", "--config", str(cfg), "trainer.epoch=2"])
    assert rc == 2 and "did you mean 'epochs'" in capsys.readouterr().err

    # --restart ignores the finished run in the run dir and trains it again
    rc = main(
        [
            "train",
            "--config",
            str(cfg),
            "--restart",
            f"--run-dir={out}",
            "trainer.epochs=1",
            "trainer.progress=false",
            "trainer.num_threads=1",
        ]
    )
    assert rc == 0 and len(json.loads((out / "metrics_epochs.json").read_text())) == 1
