"""scripts/equivariance.py runs end to end on a few generated jets and reports errors within the LGAE
issue's bounds."""

from __future__ import annotations

import json


def test_equivariance_script_generates_jets_and_writes_json(tmp_path, load_script):
    script = load_script("equivariance")
    out = tmp_path / "eq.json"
    data = tmp_path / "qcd.root"
    rc = script.main(
        [
            "--data", str(data), "--n-jets", "40", "--configs", "mix", "--transforms", "1",
            "--steps", "1", "--train-jets", "16", "--out", str(out),
        ]
    )  # fmt: skip
    assert rc == 0 and data.exists()
    res = json.loads(out.read_text())
    assert res["n_jets"] == 40
    cases = {(r["dtype"], r["mode"]): r for r in res["rows"]}
    assert set(cases) == {("float64", "eval"), ("float64", "train"), ("float32", "eval")}
    for (dtype, _), row in cases.items():
        assert set(row["errors"]) == {"p4", "latent.scalars", "latent.vectors"}
        for name, e in row["errors"].items():
            median_tol, worst_tol = (1e-6, 1e-5) if dtype == "float64" else (1e-4, 1e-3)
            assert e["median"] <= median_tol and e["worst"] <= worst_tol, (dtype, name, e)
        # rounding noise against the sample's scale of the latent scalars
        abs_tol = 1e-8 if dtype == "float64" else 1e-4
        assert row["errors"]["latent.scalars"]["abs_over_scale_worst"] <= abs_tol
