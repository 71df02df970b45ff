"""Config loading: defaults merge, typed dotted overrides, validation with "did you mean" messages."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from train_helpers import JET_MODEL, base_config

from lgae.train import ConfigError, TrainerConfig, apply_overrides, load_config, validate_config
from lgae.train.config import parse_override

REPO = Path(__file__).resolve().parents[2]


def write(path: Path, obj) -> Path:
    path.write_text(yaml.safe_dump(obj) if not isinstance(obj, str) else obj)
    return path


@pytest.fixture
def cfg_files(tmp_path, fake_data):
    write(
        tmp_path / "base.yaml",
        {
            "data": {
                "train": "bg.root",
                "n_particles": 4,
                "generate": {"process": "qcd", "n_jets": 100, "seed": 1},
            },
            "trainer": {"epochs": 7, "lr": 1e-3},
        },
    )
    (tmp_path / "models").mkdir()
    child = write(
        tmp_path / "models" / "tiny.yaml",
        {
            "defaults": ["../base.yaml"],
            "data": {"generate": {"seed": 5}},
            "model": {"name": JET_MODEL, "tau": 2},
            "trainer": {"epochs": 3},
        },
    )
    return child


def test_defaults_are_merged_underneath(cfg_files):
    cfg = load_config(cfg_files)
    assert cfg["data"]["train"] == "bg.root"  # from the base
    assert cfg["data"]["generate"] == {"process": "qcd", "n_jets": 100, "seed": 5}  # deep merge
    assert cfg["trainer"]["epochs"] == 3 and cfg["trainer"]["lr"] == 1e-3
    assert cfg["name"] == "tiny" and cfg["trainer"]["out"] == "runs/tiny"  # file stem names the run
    assert set(cfg["trainer"]) == set(TrainerConfig.keys())  # every trainer default is written out
    assert cfg["model"]["hidden"] == 16  # model defaults filled from the constructor
    assert cfg["model"]["n_particles"] == 4  # from data.n_particles


def test_overrides_are_typed(cfg_files):
    cfg = load_config(
        cfg_files,
        [
            "trainer.epochs=2",
            "data.train=qcd.root",
            "trainer.grad_clip=1.5",
            "trainer.progress=false",
            "trainer.out=runs/x",
            "name=other",
        ],
    )
    assert cfg["trainer"]["epochs"] == 2 and isinstance(cfg["trainer"]["epochs"], int)
    assert cfg["data"]["train"] == "qcd.root"
    assert cfg["trainer"]["grad_clip"] == 1.5 and cfg["trainer"]["progress"] is False
    assert cfg["trainer"]["out"] == "runs/x" and cfg["name"] == "other"
    assert parse_override("model.tau=[1,2]") == (["model", "tau"], [1, 2])
    assert parse_override("data.generate.n_jets=1e3") == (["data", "generate", "n_jets"], 1000.0)
    assert parse_override("trainer.grad_clip=null") == (["trainer", "grad_clip"], None)
    assert apply_overrides({"a": 1}, ["data.generate.seed=3"])["data"] == {"generate": {"seed": 3}}


@pytest.mark.parametrize(
    "override, hint",
    [
        ("trainer.epoch=2", "epochs"),
        ("model.tua=4", "tau"),
        ("trainr.epochs=2", "trainer"),
        ("trainer.lrr=1", "lr"),
    ],
)
def test_override_of_unknown_key_names_closest(cfg_files, override, hint):
    with pytest.raises(ConfigError, match=repr(hint)):
        load_config(cfg_files, [override])


def test_misspelt_data_key_is_caught_by_the_data_layer(tmp_path):
    """The data section is validated by lgae.data (the real validator here): same "did you mean" message."""
    with pytest.raises(ConfigError, match="did you mean 'train'"):
        validate_config(apply_overrides(base_config(tmp_path), ["data.trian=qcd.root"]))


def test_unknown_key_in_file_names_closest(tmp_path, fake_data):
    cfg = base_config(tmp_path)
    cfg["trainer"]["epoch"] = 3
    with pytest.raises(ConfigError, match="'epochs'.*trainer|trainer.*'epochs'"):
        validate_config(cfg)
    cfg = base_config(tmp_path)
    cfg["model"]["tua"] = 3
    with pytest.raises(ConfigError, match="did you mean 'tau'"):
        validate_config(cfg)
    cfg = base_config(tmp_path)
    cfg["trianer"] = cfg.pop("trainer")
    with pytest.raises(ConfigError, match="did you mean 'trainer'"):
        validate_config(cfg)


def test_missing_required_keys_name_the_section(tmp_path):
    cfg = base_config(tmp_path)
    del cfg["model"]["name"]
    with pytest.raises(ConfigError, match="'name'.*'model'"):
        validate_config(cfg)
    cfg = base_config(tmp_path)
    del cfg["data"]["train"]
    with pytest.raises(ConfigError, match="'data'.*'train'|'train'.*'data'"):
        validate_config(cfg)
    cfg["data"]["toy"] = "circle"  # a toy set needs no file
    validate_config(cfg)
    cfg = base_config(tmp_path)
    del cfg["model"]
    with pytest.raises(ConfigError, match="'model'"):
        validate_config(cfg)


@pytest.mark.parametrize(
    "key, value, match",
    [
        ("optimizer", "adan", "did you mean 'adam'"),
        ("lr_schedule", "cosin", "did you mean 'cosine'"),
        ("epochs", -1, "epochs"),
        ("lr", 0, "lr"),
        ("batch_size", 2.5, "batch_size"),
        ("dtype", "float16", "dtype"),
        ("betas", [0.9], "betas"),
        ("device", "gpu", "device"),
        ("lr_schedule_params", {"T_max": 3}, "eta_min"),  # default schedule 'none' takes no params
    ],
)
def test_bad_trainer_values(tmp_path, fake_data, key, value, match):
    cfg = base_config(tmp_path, **{key: value})
    if key == "lr_schedule_params":
        cfg["trainer"]["lr_schedule"] = "cosine"
    with pytest.raises(ConfigError, match=match):
        validate_config(cfg)


def test_schedule_params_get_defaults(tmp_path, fake_data):
    cfg = validate_config(base_config(tmp_path, lr_schedule="step", lr_schedule_params={"step_size": 2}))
    assert cfg["trainer"]["lr_schedule_params"] == {"step_size": 2, "gamma": 0.1}


def test_validate_is_idempotent(cfg_files):
    cfg = load_config(cfg_files)
    assert validate_config(cfg) == cfg


def test_cyclic_defaults_and_missing_file(tmp_path):
    write(tmp_path / "a.yaml", {"defaults": ["b.yaml"]})
    write(tmp_path / "b.yaml", {"defaults": ["a.yaml"]})
    with pytest.raises(ConfigError, match="cyclic"):
        load_config(tmp_path / "a.yaml")
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="key.sub=value"):
        apply_overrides({}, ["trainer.epochs"])


def test_repo_base_yaml_is_a_usable_base(tmp_path):
    """configs/base.yaml validates with the real data layer (nothing is read or generated)."""
    child = write(
        tmp_path / "m.yaml", {"defaults": [str(REPO / "configs" / "base.yaml")], "model": {"name": JET_MODEL}}
    )
    cfg = load_config(child)
    assert cfg["data"]["n_particles"] == 30 and cfg["data"]["val_fraction"] == 0.2
    assert cfg["data"]["generate"] == {"process": "qcd", "n_jets": 20000, "seed": 1}
    assert cfg["trainer"]["batch_size"] == 256 and cfg["trainer"]["seed"] == 0


MODEL_CONFIGS = sorted(
    p for p in (REPO / "configs").glob("*.yaml") if "model" in (yaml.safe_load(p.read_text()) or {})
)  # run configs (configs/pipeline*.yaml drive `lgae run` and have their own schema)


@pytest.mark.parametrize("path", MODEL_CONFIGS, ids=[p.name for p in MODEL_CONFIGS])
def test_shipped_configs_validate(path):
    """Every model config in configs/ validates with the real data layer (no file is read)."""
    cfg = load_config(path, ["trainer.epochs=2", "trainer.out=runs/x"])
    assert cfg["trainer"]["epochs"] == 2
