"""JetDataset, the .npz cache, and build_datasets / prepare_jets / validate_data_config (lgae.data)."""

from __future__ import annotations

import os
import sys
import types
import warnings

import awkward as ak
import numpy as np
import pytest
import torch

import lgae.data.cache as cache_mod
from lgae._validate import ConfigError
from lgae.data import (
    DATA_DEFAULTS,
    DataError,
    JetDataset,
    MomentumScale,
    build_datasets,
    load_jets,
    prepare_jets,
    split_indices,
    validate_data_config,
    write_jets_root,
)


def make_file(path, n_jets=100, seed=0, bad_entry=None, label=None):
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 12, n_jets)
    m = int(counts.sum())
    px, py, pz = (rng.normal(0, 50, m) for _ in range(3))
    e = np.sqrt(px**2 + py**2 + pz**2) + rng.uniform(0, 1, m)
    if bad_entry is not None:
        px[int(counts[:bad_entry].sum())] = np.nan
    part = {k: ak.unflatten(v, counts) for k, v in {"px": px, "py": py, "pz": pz, "energy": e}.items()}
    jets = {"label": np.full(n_jets, label if label is not None else 0), "jet_idx": np.arange(n_jets)}
    return write_jets_root(path, part, jets)


@pytest.fixture
def reads(monkeypatch):
    """Count the ROOT reads made through the cache."""
    calls = []
    original = cache_mod.read_file

    def counting(path, *args, **kwargs):
        calls.append(path)
        return original(path, *args, **kwargs)

    monkeypatch.setattr(cache_mod, "read_file", counting)
    return calls


def cache_files(directory):
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".npz") or ".tmp" in p.name)


# --------------------------------------------------------------------------------------------------- dataset


def test_split_indices_disjoint_reproducible():
    a = split_indices(101, (0.7, 0.15, 0.15), seed=42)
    assert sum(len(a[s]) for s in ("train", "val", "test")) == 101
    assert len(np.intersect1d(a["train"], a["val"])) == 0 and len(np.intersect1d(a["val"], a["test"])) == 0
    b, c = split_indices(101, seed=42), split_indices(101, seed=1)
    assert all(np.array_equal(a[s], b[s]) for s in a)
    assert not np.array_equal(a["train"], c["train"])
    assert len(split_indices(100, (0.5, 0.1, 0.0))["test"]) == 0
    with pytest.raises(ValueError, match="split_fraction"):
        split_indices(10, (0.8, 0.3, 0.1))


def test_jet_dataset_items_splits_and_transform(tmp_path):
    path = make_file(tmp_path / "qcd.root", 200)
    splits = {
        s: JetDataset(path, split=s, n_particles=8, cache=False) for s in ("train", "val", "test", "all")
    }
    assert [len(splits[s]) for s in ("train", "val", "test", "all")] == [140, 30, 30, 200]
    ids = {s: set(splits[s].jets.entry.tolist()) for s in ("train", "val", "test")}
    assert not ids["train"] & ids["val"] and not ids["val"] & ids["test"]
    p4, mask = splits["train"][3]
    assert p4.shape == (8, 4) and p4.dtype == torch.float64 and mask.dtype == torch.bool
    np_p4, np_mask, label = splits["train"].numpy()
    np.testing.assert_array_equal(np_p4[3], p4.numpy())
    assert label.shape == (140,)
    again = JetDataset(
        path, split="valid", n_particles=8, cache=False
    )  # JetNet's spelling; same seed, same jets
    np.testing.assert_array_equal(again.jets.entry, splits["val"].jets.entry)
    scaled = JetDataset(path, split="train", n_particles=8, cache=False, transform=MomentumScale(1e-3))
    torch.testing.assert_close(scaled[3][0], p4 * 1e-3)
    batch = next(iter(torch.utils.data.DataLoader(splits["train"], batch_size=16)))
    assert batch[0].shape == (16, 8, 4)
    with pytest.raises(ValueError, match="split must be one of"):
        JetDataset(path, split="training", cache=False)


# ----------------------------------------------------------------------------------------------------- cache


def test_cache_hit_skips_root_read(tmp_path, reads):
    path = make_file(tmp_path / "qcd.root", 150)
    first = JetDataset(path, split="all", n_particles=6)
    assert reads == [path]
    (cached,) = cache_files(tmp_path)
    assert cached.startswith(".qcd.root.") and cached.endswith(".lgae.npz")  # hidden, next to the source
    second = JetDataset(path, split="all", n_particles=6)
    assert reads == [path]  # no second ROOT read
    np.testing.assert_array_equal(first.jets.p4, second.jets.p4)
    np.testing.assert_array_equal(first.jets.mask, second.jets.mask)
    np.testing.assert_array_equal(first.jets.label, second.jets.label)
    assert first.jets.jet.keys() == second.jets.jet.keys() and second.jets.source == [path]
    # another reading setup is another cache entry
    JetDataset(path, split="all", n_particles=7)
    JetDataset(path, split="all", n_particles=6, config={"selection": "jet_idx < 50"})
    assert len(reads) == 3 and len(cache_files(tmp_path)) == 3
    # a changed source file invalidates its cache
    make_file(path, 120, seed=5)
    os.utime(path, ns=(1, 1))
    assert len(JetDataset(path, split="all", n_particles=6)) == 120 and len(reads) == 4


def test_cache_fallback_dir_when_source_dir_not_writable(tmp_path, reads, monkeypatch):
    src_dir, fallback = tmp_path / "ro", tmp_path / "fallback"
    src_dir.mkdir()
    path = make_file(src_dir / "qcd.root", 50)
    save = cache_mod.save_npz

    def refuse_source_dir(jets, target):  # root ignores permission bits, so simulate a read-only directory
        if target.parent == src_dir:
            raise PermissionError(f"read-only: {target.parent}")
        return save(jets, target)

    monkeypatch.setattr(cache_mod, "save_npz", refuse_source_dir)
    load_jets(path, cache=True, cache_dir=fallback)
    assert cache_files(src_dir) == [] and len(cache_files(fallback)) == 1
    load_jets(path, cache=True, cache_dir=fallback)
    assert len(reads) == 1


def test_failed_read_leaves_no_cache(tmp_path, reads):
    path = make_file(tmp_path / "nan.root", 40, bad_entry=17)
    with pytest.raises(DataError, match=r"nan\.root.*1 jet\(s\) have non-finite.*entries 17"):
        JetDataset(path)
    assert cache_files(tmp_path) == []


def test_damaged_cache_is_replaced(tmp_path, reads):
    path = make_file(tmp_path / "qcd.root", 30)
    reference = load_jets(path, cache=True)
    (name,) = cache_files(tmp_path)
    (tmp_path / name).write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="unreadable cache"):
        again = load_jets(path, cache=True)
    np.testing.assert_array_equal(again.p4, reference.p4)
    assert len(reads) == 2
    load_jets(path, cache=True)
    assert len(reads) == 2


# ------------------------------------------------------------------------------------------- build_datasets


def test_build_datasets_split_reproducible(tmp_path):
    path = make_file(tmp_path / "qcd.root", 200)
    cfg = {"train": path, "n_particles": 10, "val_fraction": 0.25}
    a, b, c = build_datasets(cfg, seed=0), build_datasets(cfg, seed=0), build_datasets(cfg, seed=1)
    p4, mask = a.train
    assert p4.dtype == torch.float64 and mask.dtype == torch.bool and p4.shape == (150, 10, 4)
    assert a.val[0].shape == (50, 10, 4)
    torch.testing.assert_close(a.val[0], b.val[0])
    assert not torch.equal(a.val[0], c.val[0])
    ids = set(a.train_jets.entry.tolist()), set(a.val_jets.entry.tolist())
    assert not ids[0] & ids[1] and len(ids[0] | ids[1]) == 200
    assert a.input_kind == "jets"
    info = a.info
    assert info["n_train"] == 150 and info["n_val"] == 50 and info["n_particles"] == 10
    assert info["sources"] == {"train": [path], "val": [path]} and info["val_from"] == "split"
    assert info["units"] == "GeV" and info["massless"] is False and info["n_features"] == 4


def test_build_datasets_max_jets_massless_and_val_files(tmp_path):
    train = make_file(tmp_path / "train.root", 300)
    val = make_file(tmp_path / "val.root", 80, seed=3)
    bundle = build_datasets({"train": train, "val": val, "max_jets": 60, "massless": True, "n_particles": 5})
    assert bundle.info["n_train"] == 60 and bundle.info["n_val"] == 60 and bundle.info["val_from"] == "files"
    np.testing.assert_array_equal(bundle.train_jets.entry, np.arange(60))  # the first 60, file order
    p4, mask = bundle.train
    torch.testing.assert_close(p4[..., 0], torch.linalg.vector_norm(p4[..., 1:], dim=-1))
    assert torch.all(p4[~mask] == 0)
    raw = load_jets(train, n_particles=5, max_jets=60)
    np.testing.assert_array_equal(p4[..., 1:].numpy(), raw.p4[..., 1:])  # 3-momenta untouched


def test_build_datasets_reader_config_and_empty_selection(tmp_path):
    path = make_file(tmp_path / "qcd.root", 100)
    bundle = build_datasets({"train": path, "reader": {"selection": "jet_idx % 2 == 0"}, "val_fraction": 0.1})
    assert bundle.info["n_train"] + bundle.info["n_val"] == 50
    with pytest.raises(DataError, match=r"qcd\.root: no jets left"):
        build_datasets({"train": path, "reader": {"selection": "jet_idx < 0"}})


def test_build_datasets_generates_missing_train_file(tmp_path, monkeypatch):
    calls = []

    def generate_jets(out, **kwargs):
        calls.append((out, kwargs))
        make_file(out, kwargs["n_jets"], seed=kwargs["seed"])

    monkeypatch.setitem(sys.modules, "lgae.data.pythia", types.SimpleNamespace(generate_jets=generate_jets))
    target = tmp_path / "gen" / "qcd.root"
    cfg = {"train": str(target), "generate": {"process": "qcd", "n_jets": 40, "seed": 1}, "n_particles": 4}
    bundle = build_datasets(cfg)
    assert calls == [(str(target), {"process": "qcd", "n_jets": 40, "seed": 1})]
    assert bundle.info["n_train"] + bundle.info["n_val"] == 40
    build_datasets(cfg)
    assert len(calls) == 1  # the file exists now
    jets = prepare_jets(
        {"out": str(tmp_path / "sig.root"), "process": "top", "n_jets": 12, "seed": 2}, {"n_particles": 3}
    )
    assert len(jets) == 12 and jets.n_particles == 3 and calls[-1][1]["process"] == "top"
    # max_jets caps the training sample, not what prepare_jets reads for evaluation
    assert len(prepare_jets(str(target), {"max_jets": 5})) == 40
    assert len(prepare_jets(str(target), {"max_jets": 5}, max_jets=7)) == 7


def test_build_datasets_toy(monkeypatch):
    calls = []

    def make_toy(name, n, seed, **kw):
        calls.append((name, n, seed, kw))
        return np.random.default_rng(seed).normal(size=(n, 3)), {"features": ["a", "b", "c"]}

    monkeypatch.setitem(sys.modules, "lgae.data.toys", types.SimpleNamespace(make_toy=make_toy))
    bundle = build_datasets({"toy": {"name": "circle", "n": 1000, "noise": 0.1}, "val_fraction": 0.2}, seed=3)
    assert calls == [("circle", 1000, 3, {"noise": 0.1})]
    (x,) = bundle.train
    assert x.shape == (800, 3) and x.dtype == torch.float64 and bundle.val[0].shape == (200, 3)
    assert bundle.info["input_kind"] == "features" and bundle.info["n_features"] == 3
    assert bundle.info["toy_meta"] == {"features": ["a", "b", "c"]}
    again = build_datasets({"toy": {"name": "circle", "n": 1000, "noise": 0.1}, "val_fraction": 0.2}, seed=3)
    torch.testing.assert_close(again.val[0], bundle.val[0])
    build_datasets({"toy": "plane"}, seed=0)
    assert calls[-1] == ("plane", 10_000, 0, {})


def test_validate_data_config():
    cfg = validate_data_config({"train": "x.root"})
    assert cfg == {**DATA_DEFAULTS, "train": "x.root"}
    with pytest.raises(ConfigError, match=r"unknown key 'n_particle'.*did you mean 'n_particles'"):
        validate_data_config({"train": "x.root", "n_particle": 30})
    with pytest.raises(ConfigError, match="missing required key 'train'"):
        validate_data_config({})
    with pytest.raises(ConfigError, match="either 'train'"):
        validate_data_config({"train": "x.root", "toy": "circle"})
    with pytest.raises(ConfigError, match="val_fraction"):
        validate_data_config({"train": "x.root", "val_fraction": 1.5})
    with pytest.raises(ConfigError, match="max_jets"):
        validate_data_config({"train": "x.root", "max_jets": 0})
    with pytest.raises(ConfigError, match="n_particles"):
        validate_data_config({"train": "x.root", "n_particles": "30"})
    with pytest.raises(ConfigError, match=r"unknown key 'selecton' in section 'data.reader'"):
        validate_data_config({"train": "x.root", "reader": {"selecton": "x"}})
    with pytest.raises(ConfigError, match="one file path"):
        validate_data_config({"train": "d/*.root", "generate": {"process": "qcd"}})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        validate_data_config({"train": ["a.root", "b.root"], "val": "c.root", "cache": False})
