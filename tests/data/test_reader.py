"""Reading jets from ROOT files (lgae.data.reader): round trips, data configs, and every kind of bad input."""

from __future__ import annotations

import warnings

import awkward as ak
import numpy as np
import pytest
import uproot
import yaml

from lgae._validate import ConfigError
from lgae.data import DataError, DataWarning, Jets, load_jets, write_jets_root


def random_jets(n_jets, lengths, seed=0):
    """Jagged (px, py, pz, energy) with the given particle counts, float64, massive particles."""
    rng = np.random.default_rng(seed)
    counts = np.asarray(lengths if lengths is not None else rng.integers(0, 12, n_jets))
    m = int(counts.sum())
    px, py, pz = (rng.normal(0, 30, m) for _ in range(3))
    e = np.sqrt(px**2 + py**2 + pz**2 + rng.uniform(0, 1, m))
    return {k: ak.unflatten(v, counts) for k, v in {"px": px, "py": py, "pz": pz, "energy": e}.items()}


def expected_padded(part, n, keep=None):
    """Reference: per jet, sort by pT descending (Python sort is stable), keep n, zero-pad."""
    if keep is not None:
        part = {k: v[keep] for k, v in part.items()}
    out, mask = [], []
    for px, py, pz, e in zip(*(ak.to_list(part[k]) for k in ("px", "py", "pz", "energy"))):
        rows = sorted(zip(e, px, py, pz), key=lambda r: -np.hypot(r[1], r[2]))[:n]
        mask.append([True] * len(rows) + [False] * (n - len(rows)))
        out.append(rows + [(0.0, 0.0, 0.0, 0.0)] * (n - len(rows)))
    return np.array(out, dtype=float).reshape(-1, n, 4), np.array(mask, dtype=bool).reshape(-1, n)


def write_root(path, part, **jet_branches):
    """Write with uproot directly: particles as one record -> part_px, ... sharing one counter branch."""
    with uproot.recreate(path) as f:
        f.mktree("tree", {"part": ak.zip(part), **{k: np.asarray(v) for k, v in jet_branches.items()}})
    return str(path)


# ------------------------------------------------------------------------------------------------ round trips


def test_round_trip_lengths_0_1_short_exact_long(tmp_path):
    n = 4
    lengths = [3, 0, 1, 4, 7, 0, 2]
    part = random_jets(len(lengths), lengths)
    labels = np.arange(len(lengths)) % 2
    path = write_root(tmp_path / "jets.root", part, label=labels)
    with pytest.warns(DataWarning, match=r"jets\.root: dropped 2 jet\(s\) with no particles"):
        jets = load_jets(path, n_particles=n)
    keep = np.array(lengths) > 0
    p4, mask = expected_padded(part, n, keep)
    assert jets.p4.dtype == np.float64 and jets.p4.shape == (5, n, 4) and jets.mask.dtype == bool
    np.testing.assert_array_equal(jets.p4, p4)  # exact: same float64 values, only reordered
    np.testing.assert_array_equal(jets.mask, mask)
    np.testing.assert_array_equal(jets.label, labels[keep])
    np.testing.assert_array_equal(jets.entry, np.flatnonzero(keep))
    np.testing.assert_array_equal(jets.jet["n_particles"], np.array(lengths)[keep])  # all constituents
    assert jets.source == [path] and len(jets) == 5
    assert jets.stats == {"read": 7, "nonfinite": 0, "selection": 0, "empty": 2}
    pt = np.hypot(jets.p4[..., 1], jets.p4[..., 2])
    assert np.all(np.diff(pt, axis=1)[jets.mask[:, 1:]] <= 0)  # pT-ordered


def test_many_random_jets_match_reference(tmp_path):
    part = random_jets(3000, None, seed=3)
    path = write_root(tmp_path / "many.root", part)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        jets = load_jets(path, n_particles=6, config={"step_size": 700})  # several chunks
    keep = ak.to_numpy(ak.num(part["px"])) > 0
    p4, mask = expected_padded(part, 6, keep)
    np.testing.assert_array_equal(jets.p4, p4)
    np.testing.assert_array_equal(jets.mask, mask)
    assert jets.label is None  # no label branch


def test_ties_keep_file_order(tmp_path):
    part = {
        "px": [[1.0, -1.0, 0.0, 1.0, 2.0]],
        "py": [[0.0, 0.0, 1.0, 0.0, 0.0]],
        "pz": [[1.0, 2.0, 3.0, 4.0, 5.0]],
    }
    part["energy"] = [[10.0, 20.0, 30.0, 40.0, 50.0]]
    path = write_jets_root(tmp_path / "ties.root", part)
    jets = load_jets(path, n_particles=3)
    np.testing.assert_array_equal(
        jets.p4[0, :, 0], [50.0, 10.0, 20.0]
    )  # pT 2, then the pT 1 ties in file order


def test_many_ties_match_reference(tmp_path):
    rng = np.random.default_rng(7)
    counts = rng.integers(1, 15, 500)
    m = int(counts.sum())
    px, py = rng.integers(-3, 4, m).astype(float), rng.integers(-3, 4, m).astype(float)  # many equal pTs
    part = {"px": px, "py": py, "pz": rng.normal(size=m), "energy": np.arange(m, dtype=float)}
    part = {k: ak.unflatten(v, counts) for k, v in part.items()}
    path = write_root(tmp_path / "ties.root", part)
    jets = load_jets(path, n_particles=5)
    np.testing.assert_array_equal(jets.p4, expected_padded(part, 5)[0])


def test_jet_quantities_computed_from_all_constituents(tmp_path):
    part = random_jets(50, np.arange(1, 51) % 9 + 1, seed=1)
    path = write_root(tmp_path / "nojet.root", part)
    jets = load_jets(
        path, n_particles=2
    )  # most jets are truncated: the jet is still the sum of ALL particles
    tot = {k: ak.to_numpy(ak.sum(part[k], axis=1)) for k in ("px", "py", "pz", "energy")}
    pt = np.hypot(tot["px"], tot["py"])
    np.testing.assert_allclose(jets.jet["pt"], pt, rtol=1e-12)
    np.testing.assert_allclose(jets.jet["eta"], np.arcsinh(tot["pz"] / pt), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(jets.jet["phi"], np.arctan2(tot["py"], tot["px"]), rtol=1e-12)
    np.testing.assert_allclose(jets.jet["energy"], tot["energy"], rtol=1e-12)
    m2 = tot["energy"] ** 2 - pt**2 - tot["pz"] ** 2
    np.testing.assert_allclose(jets.jet["mass"], np.sqrt(np.maximum(m2, 0)), rtol=1e-9)


def test_jet_branches_used_when_present_and_float32(tmp_path):
    part = {k: ak.values_astype(v, np.float32) for k, v in random_jets(5, [2, 3, 1, 4, 2]).items()}
    path = write_root(tmp_path / "f32.root", part, jet_pt=np.arange(5.0) + 100, jet_mass=np.full(5, 7.0))
    jets = load_jets(path, n_particles=3)
    assert jets.p4.dtype == np.float64
    np.testing.assert_array_equal(jets.jet["pt"], np.arange(5.0) + 100)  # from the branch
    np.testing.assert_array_equal(jets.jet["mass"], 7.0)
    np.testing.assert_allclose(jets.p4, expected_padded(part, 3)[0])


def test_one_hot_labels_and_explicit_labels(tmp_path):
    part = random_jets(4, [1, 2, 3, 1])
    onehot = {"label_QCD": [1, 0, 0, 0], "label_Tbqq": [0, 1, 0, 0], "label_Zqq": [0, 0, 1, 0]}
    path = write_root(
        tmp_path / "onehot.root", part, **{k: np.array(v, dtype=bool) for k, v in onehot.items()}
    )
    jets = load_jets(path)
    np.testing.assert_array_equal(jets.label, [0, 1, 3, -1])  # QCD=0, Tbqq=1, Wqq=2, Zqq=3; none set -> -1
    assert jets.label_names[:4] == ["QCD", "Tbqq", "Wqq", "Zqq"]
    jets = load_jets(path, config={"labels": ["label_Zqq", "label_QCD"]})
    np.testing.assert_array_equal(jets.label, [1, -1, 0, -1])
    jets = load_jets(path, config={"labels": {"type": "simple", "value": ["label_Tbqq"]}})
    np.testing.assert_array_equal(jets.label, [-1, 0, -1, -1])
    assert load_jets(path, config={"labels": None}).label is None


def test_rntuple_files_are_read_too(tmp_path):
    part = random_jets(3, [2, 1, 3])
    with uproot.recreate(tmp_path / "rn.root") as f:
        f["events"] = {"part": ak.zip(part), "label": np.array([2, 1, 0])}  # RNTuple: fields part.px, ...
    jets = load_jets(tmp_path / "rn.root", n_particles=2)
    np.testing.assert_array_equal(jets.p4, expected_padded(part, 2)[0])
    np.testing.assert_array_equal(jets.label, [2, 1, 0])


# -------------------------------------------------------------------------------------------- the data config


def test_yaml_config_renames_selects_and_adds_variables(tmp_path):
    part = random_jets(6, [1, 2, 3, 4, 5, 6], seed=2)
    with uproot.recreate(tmp_path / "custom.root") as f:
        f.mktree(
            "T",
            {
                "cand": ak.zip({"x": part["px"], "y": part["py"], "z": part["pz"], "e": part["energy"]}),
                "fj_pt": np.array([100.0, 600, 700, 300, 900, 50]),
                "fj_sd": np.arange(6.0),
            },
        )
    cfg = tmp_path / "data.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "treename": "T",
                "branches": {
                    "px": "cand_x",
                    "py": "cand_y",
                    "pz": "cand_z",
                    "energy": "cand_e",
                    "jet_pt": "fj_pt",
                },
                "new_variables": {
                    "cand_pt": "hypot(cand_x, cand_y)",
                    "lead_pt": "max(cand_pt)",
                    "n_cand": "num(cand_x)",
                },
                "selection": "(fj_pt > 500) & (n_cand >= 3)",
                "observers": ["fj_sd"],
            }
        )
    )
    jets = load_jets(tmp_path / "custom.root", n_particles=4, config=cfg)
    np.testing.assert_array_equal(jets.entry, [2, 4])
    np.testing.assert_array_equal(jets.jet["pt"], [700.0, 900.0])
    np.testing.assert_array_equal(jets.jet["fj_sd"], [2.0, 4.0])
    np.testing.assert_array_equal(jets.jet["n_cand"], [3, 5])
    pt = np.hypot(jets.p4[..., 1], jets.p4[..., 2])
    np.testing.assert_allclose(jets.part["cand_pt"], pt)  # per-particle variable, ordered and padded like p4
    np.testing.assert_allclose(jets.jet["lead_pt"], pt[:, 0])
    assert jets.stats["selection"] == 4


def test_selection_on_missing_jet_branch_uses_computed_value(tmp_path):
    part = random_jets(20, None, seed=4)
    path = write_root(tmp_path / "sel.root", part)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        everything = load_jets(path)
        cut = np.median(everything.jet["pt"])
        jets = load_jets(path, config={"selection": f"jet_pt > {cut}"})
    np.testing.assert_array_equal(jets.entry, everything.entry[everything.jet["pt"] > cut])


def test_entry_range_max_jets_and_several_files(tmp_path):
    part = random_jets(10, [1] * 10)
    a = write_root(tmp_path / "a.root", part, label=np.zeros(10, dtype=int))
    b = write_root(tmp_path / "b.root", part, label=np.ones(10, dtype=int))
    jets = load_jets(a, config={"entry_start": 3, "entry_stop": 7})
    np.testing.assert_array_equal(jets.entry, [3, 4, 5, 6])
    both = load_jets(str(tmp_path / "*.root"))
    assert len(both) == 20 and both.source == [a, b]
    np.testing.assert_array_equal(both.file_index, [0] * 10 + [1] * 10)
    np.testing.assert_array_equal(both.label, [0] * 10 + [1] * 10)
    assert len(load_jets([b, a])) == 20 and load_jets(tmp_path).source == [a, b]  # list, directory
    first = load_jets([a, b], max_jets=12, config={"step_size": 4})
    np.testing.assert_array_equal(first.entry, list(range(10)) + [0, 1])
    np.testing.assert_array_equal(first.file_index, [0] * 10 + [1] * 2)


def test_tree_auto_detection_and_choice(tmp_path):
    part = random_jets(3, [1, 2, 3])
    with uproot.recreate(tmp_path / "two.root") as f:
        f.mktree("jets", {"part": ak.zip(part)})
        f.mktree("other", {"x": np.arange(3.0)})
    with pytest.raises(DataError, match=r"two\.root: the file holds several trees \(jets, other\)"):
        load_jets(tmp_path / "two.root")
    assert len(load_jets(tmp_path / "two.root", config={"tree": "jets"})) == 3
    with pytest.raises(DataError, match=r"two\.root: no tree 'nope' in the file \(trees: jets, other\)"):
        load_jets(tmp_path / "two.root", config={"tree": "nope"})


def test_jets_subset_concat(tmp_path):
    path = write_root(tmp_path / "s.root", random_jets(6, [1, 2, 3, 1, 2, 3]), label=np.arange(6))
    jets = load_jets(path)
    sub = jets.subset([4, 1])
    np.testing.assert_array_equal(sub.label, [4, 1])
    np.testing.assert_array_equal(sub.p4, jets.p4[[4, 1]])
    assert len(jets.subset(jets.label > 2)) == 3
    cat = Jets.concat([sub, jets.subset(slice(0, 2))])
    np.testing.assert_array_equal(cat.label, [4, 1, 0, 1])
    assert cat.source == [path, path] and list(cat.file_index) == [0, 0, 1, 1]
    with pytest.raises(ValueError, match="different n_particles"):
        Jets.concat([jets, load_jets(path, n_particles=3)])


# -------------------------------------------------------------------------------------------------- bad input


def test_missing_branch_lists_existing(tmp_path):
    part = random_jets(2, [1, 2])
    del part["energy"]
    path = write_root(tmp_path / "noe.root", part)
    with pytest.raises(
        DataError, match=r"noe\.root.*no branch 'part_energy'.*branches in the file: .*part_px"
    ):
        load_jets(path)
    with pytest.raises(DataError, match=r"noe\.root.*no branch 'jet_sdmass' \(needed for observers\)"):
        load_jets(path, config={"observers": ["jet_sdmass"], "branches": {"energy": "part_px"}})
    with pytest.raises(DataError, match=r"noe\.root.*no branch 'jet_foo' \(needed for the selection\)"):
        load_jets(path, config={"selection": "jet_foo > 1", "branches": {"energy": "part_px"}})


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_momenta_fail_or_drop(tmp_path, bad):
    part = random_jets(30, [2] * 30)
    px = ak.to_numpy(ak.flatten(part["px"])).copy()
    px[[5, 6, 21, 41]] = bad  # particles of jets 2, 3, 10, 20
    part["px"] = ak.unflatten(px, 2)
    path = write_root(tmp_path / "nan.root", part)
    with pytest.raises(DataError, match=r"nan\.root.*4 jet\(s\) have non-finite.*entries 2, 3, 10, 20"):
        load_jets(path, config={"step_size": 7})
    with pytest.warns(DataWarning, match=r"nan\.root: dropped 4 jet\(s\) with non-finite"):
        jets = load_jets(path, config={"on_nonfinite": "drop", "step_size": 7})
    assert len(jets) == 26 and 10 not in jets.entry and np.isfinite(jets.p4).all()


def test_particle_branches_with_different_counts(tmp_path):
    with uproot.recreate(tmp_path / "ragged.root") as f:  # separate jagged arrays: one counter each
        f.mktree(
            "t",
            {
                "part_px": ak.Array([[1.0], [2.0, 3.0]]),
                "part_py": ak.Array([[1.0], [2.0]]),
                "part_pz": ak.Array([[1.0], [2.0, 3.0]]),
                "part_energy": ak.Array([[5.0], [5.0, 5.0]]),
            },
        )
    with pytest.raises(DataError, match=r"ragged\.root.*'part_px' and 'part_py' have different numbers"):
        load_jets(tmp_path / "ragged.root")


def test_truncated_corrupt_and_non_root_files(tmp_path):
    path = write_root(tmp_path / "good.root", random_jets(2000, [20] * 2000))
    data = (tmp_path / "good.root").read_bytes()
    (tmp_path / "cut.root").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cut\.root: the file is truncated"):
        load_jets(tmp_path / "cut.root")
    corrupt = bytearray(data)
    corrupt[len(data) // 3 : len(data) // 3 + 20000] = bytes(20000)
    (tmp_path / "corrupt.root").write_bytes(bytes(corrupt))
    with pytest.raises(DataError, match=r"corrupt\.root.*truncated or corrupt"):
        load_jets(tmp_path / "corrupt.root")
    (tmp_path / "text.root").write_text("this is not ROOT\n" * 10)
    with pytest.raises(DataError, match=r"text\.root: cannot open as a ROOT file"):
        load_jets(tmp_path / "text.root")
    assert len(load_jets(path)) == 2000


def test_missing_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothing\.root: no such file"):
        load_jets(tmp_path / "nothing.root")
    with pytest.raises(FileNotFoundError, match=r"nomatch\*\.root: the pattern matches no file"):
        load_jets(str(tmp_path / "nomatch*.root"))
    with pytest.raises(FileNotFoundError, match="the directory has no"):
        load_jets(tmp_path)


def test_config_errors(tmp_path):
    path = write_root(tmp_path / "c.root", random_jets(2, [1, 1]))
    cfg = tmp_path / "typo.yaml"
    cfg.write_text("selecton: jet_pt > 1\n")
    with pytest.raises(ConfigError, match=r"unknown key 'selecton'.*did you mean 'selection'"):
        load_jets(path, config=cfg)
    with pytest.raises(ConfigError, match=r"unknown key 'enrgy'.*did you mean 'energy'"):
        load_jets(path, config={"branches": {"enrgy": "e"}})
    with pytest.raises(ConfigError, match="selection.*function '__import__' is not allowed"):
        load_jets(path, config={"selection": "__import__('os')"})
    with pytest.raises(ConfigError, match="on_nonfinite"):
        load_jets(path, config={"on_nonfinite": "ignore"})
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        load_jets(path, config=tmp_path / "missing.yaml")
    with pytest.raises(DataError, match=r"c\.root.*selection.*one value per jet"):
        load_jets(path, config={"selection": "part_px > 0"})
    with pytest.warns(UserWarning, match="ignoring weaver key"):
        assert (
            len(load_jets(path, config={"inputs": {"pf_points": {}}, "preprocess": {"method": "manual"}}))
            == 2
        )
