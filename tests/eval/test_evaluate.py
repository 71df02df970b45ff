"""The evaluator on run directories of different models: outputs, no special cases, CLI, latent analysis."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import sklearn.metrics as sklearn_metrics  # noqa: E402
from eval_helpers import IMAGE_MODEL, RECON_MODEL, VECTOR_MODEL, make_jets, make_run_dir
from eval_helpers import eval_main as main

from lgae.eval.evaluate import (
    Sample,
    evaluate_model,
    evaluate_run,
    parse_sample_arg,
    sample_name,
    validate_evaluate_config,
)
from lgae.eval.metrics import InvertedScoreWarning


def _png_ok(path):
    data = path.read_bytes()
    return len(data) > 1000 and data[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("model_name", [RECON_MODEL, IMAGE_MODEL])
def test_evaluate_run_dir_outputs(tmp_path, samples, fake_prepare_jets, model_name):
    run = make_run_dir(tmp_path / "run", model_name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InvertedScoreWarning)
        evaluate_run(
            run,
            background=str(samples["qcd"]),
            signals=[str(samples["top"]), str(samples["w"])],
            n_boot=20,
            progress=False,
        )
    # the files were read with the run's data config (same preprocessing as training)
    assert all(c[1]["n_particles"] == 12 for c in fake_prepare_jets)
    m = json.loads((run / "metrics.json").read_text())
    assert m["background"] == "qcd" and m["signals"] == ["top", "w"]  # names from the file stems
    assert m["n_bkg"] == 600 and m["n_sig"] == {"top": 300, "w": 300}
    assert m["primary_score"] == "default" and m["scores"]["default"]["primary"] is True
    for key in ("top", "w"):
        entry = m["per_signal"][key]
        assert set(entry["eps_s"]) == {"0.1", "0.01", "0.001"}
        for e in entry["eps_s"].values():
            assert {"eps_s", "err", "err_binomial", "resolved", "n_bkg_pass"} <= set(e)
        assert entry["eps_s"]["0.1"]["resolved"] and not entry["eps_s"]["0.001"]["resolved"]  # 600 bkg jets
        assert entry["n_sig"] == 300 and entry["n_bkg"] == 600
    assert m["combined"]["n_sig"] == 600
    assert "jet_mass" in m["baselines"] and "sd_mass" in m["baselines"]
    assert m["model_info"]["n_params"] > 0

    z = np.load(run / "scores.npz")
    assert z["score"].shape == z["label"].shape == (1200,)
    assert list(z["signal_names"]) == ["top", "w"]
    np.testing.assert_array_equal(np.bincount(z["label"]), [600, 300, 300])
    np.testing.assert_array_equal(z["score"], z["score_default"])
    assert "baseline_jet_mass" in z.files
    # the AUC in metrics.json is the one of the stored scores (sklearn cross-check)
    sel = z["label"] != 2
    y = (z["label"][sel] == 1).astype(int)
    assert m["per_signal"]["top"]["auc"] == pytest.approx(sklearn_metrics.roc_auc_score(y, z["score"][sel]))

    for f in ("roc.png", "roc_top.png", "roc_w.png", "roc_combined.png", "score_hist.png"):
        assert _png_ok(run / f), f
    if model_name == RECON_MODEL:
        assert set(m["score_names"]) == {"default", "inverted", "multiplicity"}
        rec = m["reconstruction"]["qcd"]
        assert rec["jet"]["mass_rel_err"]["median"] == pytest.approx(-0.05, abs=1e-4)  # p4 scaled by 0.95
        assert rec["particle"]["pt_rel_err"]["median"] == pytest.approx(-0.05, abs=1e-4)
        assert abs(rec["particle"]["eta_diff"]["median"]) < 1e-4
        assert _png_ok(run / "recon_jet_mass.png")
        # the inverted alternative is reported un-flipped
        assert m["scores"]["inverted"]["combined"]["auc"] == pytest.approx(1 - m["combined"]["auc"])
    else:
        assert m["reconstruction"] is None and not (run / "recon_jet_mass.png").exists()


def test_evaluate_model_inverted_primary_warns_and_is_not_flipped(tmp_path):
    from eval_helpers import ReconModel

    bkg = Sample("qcd", *make_jets(400, "top", 1))  # heavier "background": the mass score is inverted
    sig = Sample("light", *make_jets(200, "qcd", 2))
    with pytest.warns(InvertedScoreWarning):
        r = evaluate_model(
            ReconModel(), {"name": "x"}, bkg, [sig], tmp_path, n_boot=0, plots=False, progress=False
        )
    assert r["combined"]["auc"] < 0.2 and r["combined"]["below_chance"]
    assert r["warnings"]


def test_evaluate_primary_score_choice_and_errors(tmp_path):
    from eval_helpers import ReconModel

    bkg = Sample("qcd", *make_jets(300, "qcd", 1))
    sig = Sample("top", *make_jets(100, "top", 2))
    r = evaluate_model(
        ReconModel(), {}, bkg, [sig], tmp_path, primary="multiplicity", n_boot=0, plots=False, progress=False
    )
    assert r["primary_score"] == "multiplicity" and r["scores"]["multiplicity"]["primary"]
    z = np.load(tmp_path / "scores.npz")
    np.testing.assert_array_equal(z["score"], z["score_multiplicity"])
    with pytest.raises(ValueError, match="not offered"):
        evaluate_model(ReconModel(), {}, bkg, [sig], tmp_path, primary="nope", plots=False, progress=False)
    with pytest.raises(ValueError, match="distinct"):
        evaluate_model(ReconModel(), {}, bkg, [sig, sig], tmp_path, plots=False, progress=False)


def test_task_and_config_defaults(tmp_path, samples, fake_prepare_jets):
    run = make_run_dir(tmp_path / "inv", RECON_MODEL, name="recon_inverse", task="inverse")
    import yaml

    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["evaluate"].update(background=f"top={samples['top']}", signals={"qcd": str(samples["qcd"])}, n_boot=0)
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InvertedScoreWarning)
        r = evaluate_run(run, progress=False, plots=False)  # files from the config's evaluate section
    assert r["task"] == "inverse" and r["background"] == "top" and r["signals"] == ["qcd"]
    with pytest.raises(ValueError, match="--background"):
        evaluate_run(make_run_dir(tmp_path / "plain", RECON_MODEL), progress=False)


def test_validate_evaluate_config():
    from lgae._validate import ConfigError

    assert validate_evaluate_config(None) == {}
    with pytest.raises(ConfigError, match="did you mean 'task'"):
        validate_evaluate_config({"tsk": "inverse"})
    with pytest.raises(ConfigError, match="task"):
        validate_evaluate_config({"task": "upside-down"})
    assert validate_evaluate_config({"workers": 2}) == {"workers": 2}
    with pytest.raises(ConfigError, match="evaluate.workers"):
        validate_evaluate_config({"workers": 0})


def test_sample_names():
    assert sample_name("data/top_test.root") == "top"
    assert sample_name("qcd_jets_30p_seed3.root") == "qcd"
    assert sample_name("x/my-signal.root") == "my_signal"
    assert parse_sample_arg("top=a/b.root") == ("top", "a/b.root")
    assert parse_sample_arg("a/b.root") == (None, "a/b.root")


def test_cli_evaluate_and_latent(tmp_path, samples, fake_prepare_jets, capsys):
    run = make_run_dir(tmp_path / "vec", VECTOR_MODEL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InvertedScoreWarning)
        rc = main(
            [
                "evaluate",
                str(run),
                "--background",
                f"qcd={samples['qcd']}",
                "--signal",
                str(samples["top"]),
                "--signal",
                f"W={samples['w']}",
                "--n-boot",
                "0",
                "--max-jets",
                "250",
                "-q",
            ]
        )
    assert rc == 0
    out = capsys.readouterr().out
    assert "AUC" in out and "combined" in out
    m = json.loads((run / "metrics.json").read_text())
    assert m["signals"] == ["top", "W"] and m["n_bkg"] == 250
    rc = main(
        [
            "latent",
            str(run),
            "-b",
            str(samples["qcd"]),
            "-s",
            str(samples["top"]),
            "-s",
            str(samples["w"]),
            "-q",
        ]
    )
    assert rc == 0
    lat = json.loads((run / "latent.json").read_text())
    assert lat["lorentz"]["tau"] == 2
    assert set(lat["lorentz"]["auc"]["mass_sum"]) == {"top", "w", "combined"}
    # the mass of the sum of the leading-particle vectors follows the jet mass
    assert lat["lorentz"]["mass_sum_vs_jet_mass"]["qcd"]["spearman"] > 0.5
    for f in ("latent_pca.png", "latent_mass_sum_vs_jet_mass.png", "latent_invariants_auc.png"):
        assert _png_ok(run / f)
    # errors are reported, not raised
    assert main(["evaluate", str(tmp_path / "nowhere"), "-b", "x.root", "-s", "y.root"]) == 2


def test_latent_gaussian_uses_relevance(tmp_path):
    from eval_helpers import ReconModel

    from lgae.eval.latent import latent_analysis

    bkg = Sample("qcd", *make_jets(300, "qcd", 1))
    sig = Sample("top", *make_jets(100, "top", 2))
    r = latent_analysis(ReconModel(), {}, bkg, [sig], tmp_path, progress=False)
    g = r["gaussian"]
    assert len(g["kl"]) == 3 and "n_relevant" in g and "mu_auc" in g
    assert (tmp_path / "latent_relevance.png").is_file() and (tmp_path / "latent.json").is_file()


def test_yaml_sample_files(tmp_path, samples, fake_prepare_jets):
    from lgae._validate import ConfigError
    from lgae.eval.evaluate import load_sample

    spec = tmp_path / "data" / "light.yaml"
    spec.write_text("files: qcd_test.npz\nname: light\nreader: {tree: events}\n")  # relative to the YAML
    s = load_sample(spec, {"n_particles": 12}, max_jets=100)
    assert s.name == "light" and len(s) == 100
    path, data_cfg = fake_prepare_jets[-1]
    assert path == str(samples["qcd"]) and data_cfg["reader"] == {"tree": "events"}
    bad = tmp_path / "bad.yaml"
    bad.write_text("fils: x.root\n")
    with pytest.raises(ConfigError, match="did you mean 'files'"):
        load_sample(bad, {})
