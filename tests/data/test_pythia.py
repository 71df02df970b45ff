"""The Pythia 8 + FastJet jet generator (lgae.data.pythia).

Fast tests (default suite) generate a few tens of jets with MPI off; the physics checks that need a few
hundred jets per class are marked ``slow`` (``pytest -m slow tests/data/test_pythia.py``).
"""

from __future__ import annotations

import builtins
import json

import numpy as np
import pytest
import uproot  # noqa: E402

from lgae.data import pythia as gen


def _have_generators() -> bool:
    try:
        gen._import_generators()
    except gen.GeneratorMissingError:
        return False
    return True


needs_gen = pytest.mark.skipif(not _have_generators(), reason="needs the 'gen' extra (pythia8mc, fastjet)")

JET_BRANCHES = {
    "part_px",
    "part_py",
    "part_pz",
    "part_energy",
    "part_pid",
    "part_charge",
    "npart",
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
    "event_chunk",
    "event_number",
}


def _read(path) -> dict:
    with uproot.open(path) as f:
        return f["jets"].arrays(library="ak")


def _jet_p4(a) -> np.ndarray:
    """(E, px, py, pz) of the stored jet axis from pt, eta, phi, energy."""
    pt, eta, phi = (np.asarray(a[k]) for k in ("jet_pt", "jet_eta", "jet_phi"))
    return np.stack(
        [np.asarray(a["jet_energy"]), pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)], axis=1
    )


def _sum_p4(a) -> np.ndarray:
    import awkward as ak

    return np.stack(
        [np.asarray(ak.sum(a[k], axis=1)) for k in ("part_energy", "part_px", "part_py", "part_pz")], 1
    )


# ----------------------------------------------------------------------------------------------------
# no generator needed
# ----------------------------------------------------------------------------------------------------


def test_chunk_seed_is_deterministic_in_range_and_distinct():
    seeds = [gen.chunk_seed(7, "qcd", i) for i in range(200)]
    assert seeds == [gen.chunk_seed(7, "qcd", i) for i in range(200)]
    assert all(1 <= s <= gen.PYTHIA_SEED_MAX for s in seeds)
    assert len(set(seeds)) == len(seeds)
    assert gen.chunk_seed(7, "qcd", 0) != gen.chunk_seed(8, "qcd", 0)
    assert gen.chunk_seed(7, "qcd", 0) != gen.chunk_seed(7, "top", 0)
    with pytest.raises(ValueError):
        gen.chunk_seed(-1, "qcd", 0)


def test_settings_and_pythia_lines():
    assert gen.default_pthat_min(800) == 560.0
    assert gen.default_pthat_min(500) == 350.0
    s = gen.GenSettings(process="z", mpi=True)
    assert s.pthat_min == 560.0
    lines = gen.pythia_settings(s, 12345)
    assert "PartonLevel:MPI = on" in lines and "PartonLevel:ISR = on" in lines
    assert "WeakZ0:gmZmode = 2" in lines and "23:onIfAny = 1 2 3 4 5" in lines
    assert lines[-2:] == ["Random:setSeed = on", "Random:seed = 12345"]
    assert "PhaseSpace:pTHatMin = 560.0" in lines
    with pytest.raises(ValueError, match="unknown process"):
        gen.GenSettings(process="higgs")
    with pytest.raises(ValueError, match="pt_min < pt_max"):
        gen.GenSettings(process="qcd", pt_min=1000, pt_max=900)
    with pytest.raises(ValueError):
        gen.pythia_settings(s, 0)
    assert gen.LABELS == {"qcd": 0, "top": 1, "w": 2, "z": 3}


def test_missing_generator_gives_install_hint(monkeypatch, tmp_path):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "pythia8mc":
            raise ImportError("No module named 'pythia8mc'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(gen.GeneratorMissingError) as err:
        gen.generate_jets("qcd", 10, 0, tmp_path / "x.root", progress=False)
    msg = str(err.value)
    assert "the jet generator needs the 'gen' extra" in msg
    assert "pip install 'pythia8mc==8.317.2' fastjet" in msg and ".[gen]" in msg
    assert isinstance(err.value, ImportError)
    assert not list(tmp_path.iterdir())


def test_daughter_list_follows_pythia_rules():
    d1 = np.array([0, 3, 5, 0, 7])
    d2 = np.array([0, 3, 6, 0, 2])
    assert gen._daughters(0, d1, d2) == []
    assert gen._daughters(1, d1, d2) == [3]
    assert gen._daughters(2, d1, d2) == [5, 6]
    assert gen._daughters(4, d1, d2) == [2, 7]


def test_hadronic_resonance_follows_copies_by_id():
    # 0 system, 1 t (-> copy 2 + gluon 3), 2 t (-> b 4, W 5), 5 W+ (-> copy 6), 6 W+ (-> u 7, dbar 8)
    ids = np.array([90, 6, 6, 21, 5, 24, 24, 2, -1])
    d1 = np.array([0, 2, 4, 0, 0, 6, 7, 0, 0])
    d2 = np.array([0, 3, 5, 0, 0, 6, 8, 0, 0])
    assert gen._hadronic_resonances(ids, d1, d2, 6) == [(2, [4, 7, 8])]
    assert gen._hadronic_resonances(ids, d1, d2, 24) == [(6, [7, 8])]
    assert gen._hadronic_resonances(ids, d1, d2, 23) == []


# ----------------------------------------------------------------------------------------------------
# generation (fast: tens of jets, MPI off)
# ----------------------------------------------------------------------------------------------------


@needs_gen
def test_qcd_file_structure(tmp_path):
    out = gen.generate_jets("qcd", 40, 3, tmp_path / "qcd.root", workers=1, chunk_size=20, progress=False)
    assert out == tmp_path / "qcd.root"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["qcd.root"]  # no temp file left behind
    with uproot.open(out) as f:
        assert f.classnames() == {"jets;1": "TTree", "metadata;1": "TObjString"}
        tree = f["jets"]
        assert set(tree.keys()) == JET_BRANCHES
        assert tree.num_entries == 40
        # the part_* branches share ONE counter (written as one record)
        for name in ("part_px", "part_py", "part_pz", "part_energy", "part_pid", "part_charge"):
            assert tree[name].count_branch.name == "npart"
        assert tree["part_px"].interpretation.content.from_dtype == np.dtype(">f8")
        assert tree["jet_pt"].interpretation.from_dtype == np.dtype(">f8")
    a = _read(out)
    n = np.asarray(a["npart"])
    assert np.all((n >= 1) & (n <= 30))
    assert np.all(n == np.minimum(np.asarray(a["jet_nparticles"]), 30))
    pt = np.asarray(a["jet_pt"])
    assert np.all((pt >= 800) & (pt <= 1200)) and np.all(np.abs(np.asarray(a["jet_eta"])) < 2.5)
    # constituents pT-ordered, float64, no neutrinos, physical
    import awkward as ak

    cpt = np.hypot(a["part_px"], a["part_py"])
    assert ak.all(cpt[:, :-1] >= cpt[:, 1:])
    pid = np.abs(ak.flatten(a["part_pid"]).to_numpy())
    assert not np.isin(pid, [12, 14, 16]).any()
    assert set(np.unique(ak.flatten(a["part_charge"]).to_numpy())) <= {-1, 0, 1}
    assert ak.all(a["part_energy"] > 0)
    # labels
    assert np.all(np.asarray(a["label"]) == 0) and np.all(np.asarray(a["label_QCD"]))
    assert not any(np.asarray(a[k]).any() for k in ("label_Tbqq", "label_Wqq", "label_Zqq"))
    assert np.all(np.asarray(a["event_chunk"]) == np.repeat([0, 1], 20))
    assert np.all(np.asarray(a["jet_sdmass"]) <= np.asarray(a["jet_mass"]) + 1e-9)
    meta = gen.read_metadata(out)
    assert meta["process"] == "qcd" and meta["n_jets"] == 40 and meta["seed"] == 3 and meta["mpi"] is False
    assert meta["generator"]["version"].startswith("8.317")
    assert meta["tree"] == "jets" and meta["versions"]["lgae"]
    assert meta["chunk_seeds"] == [gen.chunk_seed(3, "qcd", 0), gen.chunk_seed(3, "qcd", 1)]
    json.dumps(meta)


@needs_gen
def test_constituents_sum_to_jet_in_float64(tmp_path):
    """With every constituent stored, their sum is the jet 4-vector (E-scheme) to float64 precision."""
    out = gen.generate_jets(
        "top", 8, 5, tmp_path / "top.root", workers=1, chunk_size=8, n_constituents=1000, progress=False
    )
    a = _read(out)
    assert np.all(np.asarray(a["npart"]) == np.asarray(a["jet_nparticles"]))
    jet, tot = _jet_p4(a), _sum_p4(a)
    scale = np.asarray(a["jet_energy"])[:, None]
    assert np.max(np.abs(jet - tot) / scale) < 1e-9
    m2 = tot[:, 0] ** 2 - (tot[:, 1:] ** 2).sum(1)
    np.testing.assert_allclose(np.sqrt(m2), np.asarray(a["jet_mass"]), rtol=1e-6)
    assert np.all(np.asarray(a["label"]) == 1) and np.all(np.asarray(a["label_Tbqq"]))


@needs_gen
def test_output_independent_of_worker_count(tmp_path):
    kw = dict(n_jets=20, seed=9, chunk_size=10, progress=False)
    one = _read(gen.generate_jets("qcd", out=tmp_path / "w1.root", workers=1, **kw))
    two = _read(gen.generate_jets("qcd", out=tmp_path / "w2.root", workers=2, **kw))
    assert one.fields == two.fields
    for name in one.fields:
        assert one[name].tolist() == two[name].tolist(), name
    assert gen.read_metadata(tmp_path / "w2.root")["workers"] == 2


@needs_gen
def test_signal_jets_are_truth_matched(tmp_path):
    """W jets: the (MPI-off) soft-drop mass sits at the W mass for most jets, not at QCD-like values.

    Not all: ~10 % of W -> qq' decays are so asymmetric (z < 0.1) that soft drop grooms a prong away,
    and some jets catch a hard extra parton; with 400 jets ~2/3 have 60 < m_SD < 100 GeV against ~7 % of
    QCD jets.
    """
    out = gen.generate_jets("w", 30, 1, tmp_path / "w.root", workers=1, chunk_size=30, progress=False)
    a = _read(out)
    sd = np.asarray(a["jet_sdmass"])
    assert 70 < np.median(sd) < 90
    assert np.mean((sd > 60) & (sd < 100)) > 0.5
    assert np.all(np.asarray(a["label"]) == 2) and np.all(np.asarray(a["label_Wqq"]))


@needs_gen
def test_interrupted_run_leaves_no_file(tmp_path, monkeypatch):
    real = gen.generate_chunk

    def failing(settings, seed, index, n, **kw):
        if index == 1:
            raise KeyboardInterrupt
        return real(settings, seed, index, n, **kw)

    monkeypatch.setattr(gen, "generate_chunk", failing)
    with pytest.raises(KeyboardInterrupt):
        gen.generate_jets("qcd", 10, 0, tmp_path / "x.root", workers=1, chunk_size=5, progress=False)
    assert list(tmp_path.iterdir()) == []


@needs_gen
def test_impossible_cuts_raise_instead_of_looping(tmp_path):
    with pytest.raises(RuntimeError, match="jets passed"):
        gen.generate_chunk(
            gen.GenSettings(process="qcd", pt_min=800, pt_max=801, eta_max=0.01), 0, 0, 5, max_events=50
        )


def test_bad_arguments(tmp_path):
    if not _have_generators():
        pytest.skip("needs the 'gen' extra")
    with pytest.raises(ValueError):
        gen.generate_jets("qcd", 0, 0, tmp_path / "x.root", progress=False)
    with pytest.raises(ValueError):
        gen.generate_jets("qcd", 5, -1, tmp_path / "x.root", progress=False)
    with pytest.raises(ValueError, match="unknown process"):
        gen.generate_jets("higgs", 5, 0, tmp_path / "x.root", progress=False)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------------------------------
# physics sanity (slow: a few hundred jets per class)
# ----------------------------------------------------------------------------------------------------

# soft-drop mass window that must hold the median of each signal class (MPI off), and the pole mass
SD_WINDOWS = {"top": (155.0, 185.0, 172.5), "w": (72.0, 88.0, 80.4), "z": (82.0, 98.0, 91.2)}


def _mode(x, lo, hi, width=5.0):
    h, e = np.histogram(x, bins=np.arange(lo, hi + width, width))
    return e[np.argmax(h)] + width / 2


@pytest.mark.slow
@needs_gen
@pytest.mark.parametrize("process", ["qcd", "top", "w", "z"])
def test_jet_mass_peaks(process, tmp_path):
    a = _read(gen.generate_jets(process, 300, 21, tmp_path / f"{process}.root", workers=2, progress=False))
    sd, m = np.asarray(a["jet_sdmass"]), np.asarray(a["jet_mass"])
    if process == "qcd":
        # broad, falling: most QCD jets groom down to small masses, the ungroomed mass is spread widely
        assert np.median(sd) < 60 and np.percentile(m, 90) - np.percentile(m, 10) > 80
        return
    lo, hi, pole = SD_WINDOWS[process]
    assert lo < np.median(sd) < hi
    assert abs(_mode(sd, 40, 250) - pole) < 10
    # the ungroomed mass (no MPI) peaks above the pole only by the extra radiation caught in the jet
    assert pole - 5 < np.median(m) < pole + 25
    assert np.mean(np.abs(sd - pole) < 20) > 0.45  # measured 0.58 (top), 0.67 (W), 0.6 (Z) with 400 jets


@pytest.mark.slow
@needs_gen
def test_mpi_raises_ungroomed_not_groomed_mass(tmp_path):
    kw = dict(n_jets=150, seed=4, workers=2, progress=False)
    off = _read(gen.generate_jets("w", out=tmp_path / "off.root", mpi=False, **kw))
    on = _read(gen.generate_jets("w", out=tmp_path / "on.root", mpi=True, **kw))
    assert gen.read_metadata(tmp_path / "on.root")["mpi"] is True
    dm = np.median(np.asarray(on["jet_mass"])) - np.median(np.asarray(off["jet_mass"]))
    assert 3 < dm < 30
    assert abs(np.median(np.asarray(on["jet_sdmass"])) - 80.4) < 8
    assert np.mean(np.asarray(on["jet_nparticles"])) > np.mean(np.asarray(off["jet_nparticles"]))
