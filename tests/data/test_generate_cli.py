"""``lgae generate``: argument handling, the jet and toy paths, the round trip via ``python -m lgae``."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import uproot  # noqa: E402

from lgae.data import cli
from lgae.data import pythia as gen

REPO = Path(__file__).resolve().parents[2]


def _have_generators() -> bool:
    try:
        gen._import_generators()
    except gen.GeneratorMissingError:
        return False
    return True


needs_gen = pytest.mark.skipif(not _have_generators(), reason="needs the 'gen' extra (pythia8mc, fastjet)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lgae")
    cli.register(parser.add_subparsers(dest="command"))
    return parser


def test_register_adds_generate_with_func():
    args = _parser().parse_args(
        ["generate", "--process", "top", "--n-jets", "5", "--seed", "1", "--out", "x.root"]
    )
    assert args.func is cli.run
    assert (args.process, args.n, args.seed, args.out) == ("top", 5, 1, "x.root")
    assert args.mpi is None and args.workers is None  # "not given": the library defaults apply
    args = _parser().parse_args(
        ["generate", "--process", "w", "--n", "5", "--out", "x.root", "--mpi", "--workers", "3"]
    )
    assert args.mpi is True and args.workers == 3 and args.seed == 0
    args = _parser().parse_args(["generate", "--process", "w", "--n", "5", "--out", "x.root", "--no-mpi"])
    assert args.mpi is False


def test_process_and_toy_are_mutually_exclusive(capsys):
    with pytest.raises(SystemExit) as e:
        _parser().parse_args(["generate", "--process", "qcd", "--toy", "circle", "--n", "5", "--out", "x"])
    assert e.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _parser().parse_args(["generate", "--n", "5", "--out", "x"])  # one of them is required
    with pytest.raises(SystemExit):
        _parser().parse_args(["generate", "--process", "higgs", "--n", "5", "--out", "x"])


def test_toy_rejects_jet_options(tmp_path, capsys):
    rc = cli.main(["--toy", "circle", "--n", "50", "--out", str(tmp_path / "c.npz"), "--mpi"])
    assert rc == 2
    assert "--mpi only apply to --process" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_toy_path_writes_the_toy(tmp_path, capsys):
    from lgae.data import toys

    rc = cli.main(["--toy", "circle", "--n", "64", "--seed", "3", "--out", str(tmp_path / "c.npz"), "-q"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "64 'circle' toy events" in out
    x, meta = toys.read_toy(tmp_path / "c.npz")
    assert x.shape[0] == 64 and meta["seed"] == 3


def test_unknown_toy_is_a_clean_error(tmp_path, capsys):
    rc = cli.main(["--toy", "circel", "--n", "64", "--out", str(tmp_path / "c.npz")])
    assert rc == 2
    assert "circle" in capsys.readouterr().err  # the closest valid name is suggested


def test_missing_generator_is_a_clean_error(tmp_path, capsys, monkeypatch):
    def missing():
        raise gen.GeneratorMissingError(gen.GEN_EXTRA_HINT)

    monkeypatch.setattr(gen, "_import_generators", missing)
    rc = cli.main(["--process", "qcd", "--n", "5", "--out", str(tmp_path / "q.root")])
    assert rc == 1
    assert "pip install 'pythia8mc==8.317.2' fastjet" in capsys.readouterr().err


def test_bad_numbers_are_clean_errors(tmp_path, capsys):
    assert cli.main(["--process", "qcd", "--n", "0", "--out", str(tmp_path / "q.root")]) == 2
    assert cli.main(["--process", "qcd", "--n", "5", "--seed", "-3", "--out", str(tmp_path / "q.root")]) == 2
    assert (
        cli.main(["--process", "qcd", "--n", "5", "--workers", "0", "--out", str(tmp_path / "q.root")]) == 2
    )
    assert not list(tmp_path.iterdir())


@needs_gen
def test_jets_in_process(tmp_path, capsys):
    out = tmp_path / "sub" / "z.root"
    rc = cli.main(
        [
            "--process",
            "z",
            "--n-jets",
            "12",
            "--seed",
            "2",
            "--out",
            str(out),
            "--workers",
            "1",
            "--chunk-size",
            "6",
            "--n-constituents",
            "20",
            "--pt-min",
            "700",
            "-q",
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert "wrote 12 z jets" in printed and "jets/s" in printed and str(out) in printed
    with uproot.open(out) as f:
        a = f["jets"].arrays(["npart", "jet_pt", "label", "label_Zqq"], library="np")
    assert len(a["jet_pt"]) == 12 and a["npart"].max() <= 20 and a["jet_pt"].min() >= 700
    assert np.all(a["label"] == 3) and np.all(a["label_Zqq"])
    meta = gen.read_metadata(out)
    assert meta["settings"]["pt_min"] == 700 and meta["settings"]["pthat_min"] == 490
    assert meta["chunk_size"] == 6 and meta["settings"]["n_constituents"] == 20


@needs_gen
def test_python_dash_m_lgae_generate_round_trip(tmp_path):
    """``python -m lgae generate ...`` writes a file that uproot reads, with the weaver branches."""
    out = tmp_path / "qcd.root"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    cmd = [
        sys.executable,
        "-m",
        "lgae",
        "generate",
        "--process",
        "qcd",
        "--n-jets",
        "10",
        "--seed",
        "4",
        "--out",
        str(out),
        "--workers",
        "1",
        "--quiet",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "wrote 10 qcd jets" in proc.stdout
    assert "FastJet release" not in proc.stdout  # the banner is silenced
    with uproot.open(out) as f:
        keys = set(f["jets"].keys())
        assert f["jets"].num_entries == 10
    assert {
        "part_px",
        "part_py",
        "part_pz",
        "part_energy",
        "jet_pt",
        "jet_eta",
        "jet_phi",
        "jet_energy",
        "jet_mass",
        "jet_nparticles",
        "jet_sdmass",
        "label",
        "label_QCD",
        "label_Tbqq",
        "label_Wqq",
        "label_Zqq",
    } <= keys
