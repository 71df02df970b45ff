"""Scoring in worker processes: the same scores as in the parent process, in input order; clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from eval_helpers import make_jets

from lgae.eval.evaluate import Sample, evaluate_model, resolve_workers
from lgae.eval.parallel import ProcessScorer, default_workers
from lgae.models import build_model


@pytest.fixture(scope="module")
def lgae_and_jets():
    torch.manual_seed(0)
    model = build_model("lgae", n_particles=12, aggregation="minmax", tau_vectors=2, dtype="float32").eval()
    p4, mask = make_jets(700, "top", seed=3)
    return model, p4.astype(np.float32), mask


def _in_process(model, p4, mask, batch, method="anomaly_score"):
    out = []
    with torch.no_grad():
        for s in range(0, len(p4), batch):
            x, m = torch.as_tensor(p4[s : s + batch]), torch.as_tensor(mask[s : s + batch])
            out.append(getattr(model, method)(x, m))
    if isinstance(out[0], dict):
        return {k: torch.cat([o[k] for o in out]).double().numpy() for k in out[0]}
    return torch.cat(out).double().numpy()


def test_process_scorer_matches_in_process_scores_in_order(lgae_and_jets):
    model, p4, mask = lgae_and_jets
    ref = _in_process(model, p4, mask, 128)
    # 700 jets in tasks of 256 (whole batches of 128): 3 tasks over 2 workers, the last one partial
    with ProcessScorer(model, workers=2, batch_size=128, task_jets=256) as scorer:
        got = scorer.score(torch.as_tensor(p4), torch.as_tensor(mask))  # tensors are accepted too
        assert got.shape == (700,) and got.dtype == np.float64
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=0)
        # a sample smaller than a batch, and an empty one
        np.testing.assert_allclose(scorer.score(p4[:5], mask[:5]), ref[:5], rtol=1e-5, atol=0)
        assert scorer.score(p4[:0], mask[:0]).shape == (0,)
        with pytest.raises(ValueError, match=r"p4 \(N, n, 4\) and mask \(N, n\)"):
            scorer.score(p4[:, :, :3], mask)
        with pytest.raises(ValueError, match="mask"):
            scorer.score(p4, mask[:10])
        with pytest.raises(TypeError, match="p4 must be a numpy array"):
            scorer.score(p4.tolist(), mask)


def test_process_scorer_scores_dict_and_argument_errors(lgae_and_jets):
    model, p4, mask = lgae_and_jets
    ref = _in_process(model, p4[:300], mask[:300], 100, method="scores")
    with ProcessScorer(model, workers=2, method="scores", batch_size=100) as scorer:
        got = scorer.score(p4[:300], mask[:300])
    assert set(got) == set(ref)
    for k in ref:
        np.testing.assert_allclose(got[k], ref[k], rtol=1e-5, atol=1e-12, err_msg=k)
    with pytest.raises(ValueError, match="method"):
        ProcessScorer(model, method="forward")
    with pytest.raises(ValueError, match="workers"):
        ProcessScorer(model, workers=0)
    assert default_workers() >= 1


def test_evaluate_in_worker_processes_gives_the_same_metrics(tmp_path, lgae_and_jets):
    model, p4, mask = lgae_and_jets
    bkg = Sample("qcd", *make_jets(300, "qcd", 1))
    sig = Sample("top", *make_jets(200, "top", 2))
    res = {}
    for w in (1, 2):
        out = tmp_path / f"w{w}"
        r = evaluate_model(model, {}, bkg, [sig], out, n_boot=0, plots=False, progress=False, workers=w)
        assert r["timing"]["eval_workers"] == w
        res[w] = (r, np.load(out / "scores.npz"))
    np.testing.assert_allclose(res[2][1]["score"], res[1][1]["score"], rtol=1e-5)
    assert res[2][0]["combined"]["auc"] == pytest.approx(res[1][0]["combined"]["auc"], abs=1e-9)
    # reconstruction quality is still measured (in this process)
    assert json.dumps(res[2][0]["reconstruction"]) == json.dumps(res[1][0]["reconstruction"])


def test_resolve_workers(lgae_and_jets):
    model = lgae_and_jets[0]
    assert resolve_workers(None, model, 100) == 1  # small samples: in this process
    assert resolve_workers(None, model, 10**6) == default_workers()
    assert resolve_workers(3, model, 100) == 3
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="workers"):
            resolve_workers(bad, model, 100)


def test_compile_checked_falls_back_to_eager(monkeypatch, lgae_and_jets):
    from lgae.eval import parallel

    model, p4, mask = lgae_and_jets
    x, m = torch.as_tensor(p4[:64]), torch.as_tensor(mask[:64])
    fn = model.anomaly_score

    def broken(f, **kw):
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(torch, "compile", broken)
    with pytest.warns(UserWarning, match="no C\\+\\+ compiler"):
        got, info = parallel._compile_checked(fn, x, m, torch.float32)
    assert got is fn and not info["compiled"] and "no C++ compiler" in info["compile_error"]

    # a "compiled" scorer whose values differ from the eager ones is not used
    monkeypatch.setattr(torch, "compile", lambda f, **kw: lambda a, b: f(a, b) * 1.01)
    with pytest.warns(UserWarning, match="differ from eager"):
        got, info = parallel._compile_checked(fn, x, m, torch.float32)
    assert got is fn and not info["compiled"] and "differ" in info["compile_error"]

    # one that agrees to rounding is
    monkeypatch.setattr(torch, "compile", lambda f, **kw: lambda a, b: f(a, b) * (1 + 1e-5))
    got, info = parallel._compile_checked(fn, x, m, torch.float32)
    assert got is not fn and info["compiled"] and info["compile_s"] >= 0


@pytest.mark.slow
def test_compiled_workers_score_as_eager(lgae_and_jets):
    # real torch.compile in 2 workers (about a minute the first time on a machine); massless test jets,
    # where the compiled Gram matrix always takes its massive-particle path
    model, p4, mask = lgae_and_jets
    ref = _in_process(model, p4, mask, 128)
    with ProcessScorer(model, workers=2, batch_size=128, task_jets=256, compile=True) as scorer:
        info = scorer.warm_up(p4, mask)
        assert len(info) == 2 and all(i["compiled"] for i in info), info
        got = scorer.score(p4, mask)  # 700 jets: the last batch is padded to the compiled shape
    # reordered float32 arithmetic: ~1e-7 typically, up to ~1e-4 on a few jets (the model's sensitivity)
    rel = np.abs(got - ref) / np.abs(ref)
    assert np.median(rel) < 1e-5 and rel.max() < 1e-3, (np.median(rel), rel.max())
