"""Streaming jets from ROOT files: same tensors as the in-memory reader, disjoint shards, seeded shuffling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lgae._validate import ConfigError
from lgae.data import DataError, load_jets, prepare_jets
from lgae.data.stream import (
    StreamingJets,
    bench_stream_memory,
    build_stream_datasets,
    check_stream_config,
    stream_options,
    write_synthetic_root,
)

torch.set_num_threads(1)

READER = {"selection": "jet_pt > 150", "step_size": 170}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("stream")
    return [
        write_synthetic_root(tmp / "a.root", 700, n_max=25, seed=1, chunk=300),
        write_synthetic_root(tmp / "b.root", 450, n_max=25, seed=2),
    ]


def _cat(batches):
    return torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])


def test_streamed_tensors_equal_the_in_memory_reader(files):
    ref = load_jets(files, 12, READER)
    assert ref.stats["selection"] > 0  # the selection really drops jets, in several units per file
    ds = StreamingJets(files, 12, READER, batch_size=64, buffer_size=100, shuffle=False)
    assert len(ds.units) >= 8 and all(0 < stop - start <= 170 for _, start, stop in ds.units)
    batches = list(ds)
    assert all(len(b[0]) == 64 for b in batches[:-1])
    p4, mask = _cat(batches)
    assert p4.dtype == torch.float64 and mask.dtype == torch.bool
    assert torch.equal(p4, torch.from_numpy(ref.p4))
    assert torch.equal(mask, torch.from_numpy(ref.mask))
    chunks = list(ds.iter_jets())
    assert np.array_equal(np.concatenate([j.entry for j in chunks]), ref.entry)
    assert np.array_equal(np.concatenate([j.file_index for j in chunks]), ref.file_index)


def test_massless_and_entry_range_as_prepare_jets(files):
    data = {
        "n_particles": 8,
        "massless": True,
        "cache": False,
        "reader": {"entry_start": 50, "entry_stop": 400},
    }
    ref = prepare_jets(files, data)
    ds = StreamingJets(files, 8, data["reader"], batch_size=1000, shuffle=False, massless=True, step_size=90)
    p4, mask = _cat(list(ds))
    assert torch.equal(p4, torch.from_numpy(ref.p4)) and torch.equal(mask, torch.from_numpy(ref.mask))
    assert ds.n_entries == 2 * 350


@pytest.mark.parametrize("shuffle", [False, True])
def test_shards_are_disjoint_and_cover_every_jet(files, shuffle):
    ds = StreamingJets(files, 12, READER, shuffle=shuffle, seed=5)
    ds.set_epoch(3)
    ref = load_jets(files, 12, READER)
    keys = []
    for shard in range(4):  # 2 ranks x 2 workers
        keys.append({(int(f), int(e)) for j in ds.iter_jets(shard, 4) for f, e in zip(j.file_index, j.entry)})
    assert all(keys)
    assert sum(len(k) for k in keys) == len(set().union(*keys)) == len(ref)
    assert set().union(*keys) == set(zip(ref.file_index.tolist(), ref.entry.tolist()))


def test_small_inputs_are_cut_into_enough_units_for_every_rank(files):
    ds = StreamingJets(files[1], 12, None, rank=3, world=4)  # 450 entries, default step_size 100000
    assert len(ds.units) >= 4 * 8
    assert sum(stop - start for _, start, stop in ds.units) == 450
    assert all(len(ds.shard_units(r, 4)) > 0 for r in range(4))


def test_rank_and_world_pick_the_shard(files):
    a = StreamingJets(files, 12, READER, rank=0, world=2, shuffle=False)
    b = StreamingJets(files, 12, READER, rank=1, world=2, shuffle=False)
    ua, ub = a.shard_units(0, 2), b.shard_units(1, 2)
    assert set(ua).isdisjoint(ub) and sorted(ua + ub) == sorted(a.units)
    n = sum(len(x[0]) for x in a) + sum(len(x[0]) for x in b)
    assert n == len(load_jets(files, 12, READER))
    with pytest.raises(ValueError, match="rank"):
        StreamingJets(files, 12, READER, rank=2, world=2)


def test_shuffle_is_seeded_per_epoch_and_keeps_every_jet(files):
    def run(seed, epoch):
        ds = StreamingJets(files, 12, READER, batch_size=50, buffer_size=200, seed=seed)
        ds.set_epoch(epoch)
        return _cat(list(ds))

    p0, _ = run(0, 0)
    ref = torch.from_numpy(load_jets(files, 12, READER).p4)
    assert torch.equal(run(0, 0)[0], p0)  # reproducible
    assert not torch.equal(p0, ref)  # shuffled
    assert not torch.equal(run(0, 1)[0], p0) and not torch.equal(run(1, 0)[0], p0)
    key = lambda p: torch.sort(p.sum((1, 2))).values  # noqa: E731
    assert torch.equal(key(p0), key(ref))  # the same jets


def test_dataloader_workers_read_their_own_shards(files):
    ds = StreamingJets(files, 12, READER, batch_size=64, shuffle=False)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2)
    p4, _ = _cat(list(loader))
    ref = torch.from_numpy(load_jets(files, 12, READER).p4)
    key = lambda p: torch.sort(p.sum((1, 2))).values  # noqa: E731
    assert torch.equal(key(p4), key(ref))


def test_errors_name_the_file(tmp_path, files):
    with pytest.raises(DataError, match="no branch 'part_q'"):
        StreamingJets(files, 12, {"branches": {"px": "part_q"}})
    bad = tmp_path / "bad.root"
    bad.write_bytes(b"not a root file")
    with pytest.raises(DataError, match="bad.root"):
        StreamingJets([bad], 12)


def test_stream_options_and_config_checks():
    assert stream_options(False) is None and stream_options(None) is None
    assert stream_options(True)["buffer_size"] == 100_000
    assert stream_options({"buffer_size": 10})["shuffle"] is True
    with pytest.raises(ConfigError, match="buffr_size"):
        stream_options({"buffr_size": 10})
    with pytest.raises(ConfigError, match="num_workers"):
        stream_options({"num_workers": -1})
    with pytest.raises(ConfigError, match="data.val"):
        check_stream_config({"train": "a.root", "val": None, "stream": True})
    assert check_stream_config({"train": "a.root", "val": "b.root", "stream": False})["stream"] is False


def test_build_stream_datasets_splits_the_global_batch(files):
    cfg = {
        "train": files[0],
        "val": files[1],
        "n_particles": 10,
        "stream": {"buffer_size": 300},
        "cache": False,
    }
    train, val, info = build_stream_datasets(cfg, seed=0, batch_size=64, rank=1, world=2)
    assert train.batch_size == 32 and train.rank == 1 and train.world == 2
    assert val[0].shape[1:] == (10, 4) and info["n_val"] == len(val[0]) and info["streamed"]


def test_train_with_data_stream(files, tmp_path):
    """``data.stream: true`` end to end through lgae.train.train with a real model."""
    from lgae.train import load_run, train

    cfg = {
        "data": {"train": files, "val": files[1], "n_particles": 8, "stream": True, "cache": False},
        "model": {"name": "gnnae-pl", "node_sizes": [4], "edge_sizes": [[8]]},
        "trainer": {"epochs": 2, "batch_size": 128, "progress": False, "num_threads": 1},
    }
    run_dir = train(cfg, tmp_path / "run")
    import json

    summary = json.loads((run_dir / "run.json").read_text())
    assert summary["streamed"] and summary["n_train"] is None and summary["epochs_completed"] == 2
    assert summary["mean_train_jets_per_s"] > 0
    model, config = load_run(run_dir)
    assert config["data"]["stream"]["buffer_size"] == 100_000 and model.n_particles == 8


def test_streaming_memory_does_not_grow_with_the_file(tmp_path):
    """Small version of scripts/bench_stream.py: 8x the jets, about the same peak memory."""
    kw = {
        "n_particles": 30,
        "buffer_size": 1_000,
        "step_size": 1_000,
        "basket_size": 1_000,
        "workdir": tmp_path,
    }
    small = bench_stream_memory(5_000, **kw)
    large = bench_stream_memory(40_000, **kw)
    assert small["stream"]["jets"] == 5_000 and large["stream"]["jets"] == 40_000
    in_memory_mb = 40_000 * 30 * (4 * 8 + 1) / 2**20  # what load_jets holds for the large file (38 MB)
    growth = large["stream"]["peak_growth_mb"], small["stream"]["peak_growth_mb"]
    assert growth[0] < 0.75 * in_memory_mb and growth[0] - growth[1] < 0.25 * in_memory_mb, growth
    assert not list(tmp_path.iterdir())  # the synthetic files are removed
