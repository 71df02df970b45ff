"""Toy datasets for symmetry discovery with a plain VAE (after V. Sanz, arXiv:2504.05174).

``make_toy(name, n, seed, **kw)`` returns ``(x, meta)``: ``x`` is an ``(n, D)`` float64 array of (by default
standardised) features and ``meta`` a JSON-serialisable dict that says what the sample is:

``feature_names``
    names of the ``D`` columns of ``x`` (after dropping zero-variance features).
``intrinsic_dim``
    the expected number of relevant latent directions (degree-of-freedom counting, see ``dof`` and
    ``docs/symmetry.md``); ``None`` where it depends on the VAE's resolution (the ``gaussian`` toy).
``dof``
    the counting behind ``intrinsic_dim``: the free variables and the exact constraints.
``description``, ``generator``
    what was generated and how: ``"analytic"``, ``"pythia"`` (Pythia 8 via ``pythia8mc``) or ``"LO sampler"``.
``standardised``, ``mean``, ``std``
    whether ``x = (raw - mean) / std`` was applied, with the per-feature mean and std of the kept features.
``dropped``
    names of the raw features dropped because they have zero variance (e.g. the muon energies at fixed
    sqrt(s)).
``params``
    every generator parameter, defaults included, so that the call can be repeated.

Everything is deterministic in ``seed`` (numpy ``default_rng(seed)``; Pythia's ``Random:seed`` is ``seed + 1``
because Pythia reads 0 as "seed from the clock").

4-momenta are ``(E, px, py, pz)`` in GeV, metric ``(+, -, -, -)``; the mu- comes first, the mu+ second.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._validate import ConfigError, check_keys, closest

__all__ = [
    "TOYS",
    "TWO_D",
    "ToySpec",
    "make_toy",
    "write_toy",
    "read_toy",
    "available_toys",
    "pythia_available",
    "generator_variables",
]

M_Z = 91.1876
GAMMA_Z = 2.4952
#: the toys whose two features are a point (x1, x2) of the plane
TWO_D = ("plane", "circle", "annulus", "ellipse")
MUON_FEATURES = [f"{p}_{c}" for p in ("mum", "mup") for c in ("E", "px", "py", "pz")]


@dataclass(frozen=True)
class ToySpec:
    """A registered toy: ``fn(rng, n, **params) -> (raw (n, D), info dict)`` plus its documentation."""

    fn: Callable
    description: str
    feature_names: tuple[str, ...] | None  # None: depends on the parameters (the gaussian toy)
    defaults: dict
    standardise: bool = True


TOYS: dict[str, ToySpec] = {}


def _register(name: str, description: str, feature_names, standardise: bool = True, **defaults):
    def deco(fn):
        TOYS[name] = ToySpec(
            fn, description, None if feature_names is None else tuple(feature_names), defaults, standardise
        )
        return fn

    return deco


def available_toys() -> list[str]:
    """Names accepted by :func:`make_toy`."""
    return sorted(TOYS)


def pythia_available() -> bool:
    """True when the ``pythia8mc`` bindings can be imported."""
    try:
        import pythia8mc  # noqa: F401
    except ImportError:
        return False
    return True


# ----------------------------------------------------------------------------------------------------- planes
@_register(
    "plane",
    "D^2D: points filling a 2-D region (uniform square or Gaussian); no constraint",
    ["x1", "x2"],
    dist="uniform",
    half_width=1.0,
)
def _plane(rng, n, dist, half_width):
    if dist == "uniform":
        x = rng.uniform(-half_width, half_width, size=(n, 2))
    elif dist == "gaussian":
        x = rng.normal(0.0, half_width, size=(n, 2))
    else:
        raise ConfigError(f"toy 'plane': dist must be 'uniform' or 'gaussian', got {dist!r}")
    return x, {"intrinsic_dim": 2, "generator": "analytic", "dof": {"free": ["x1", "x2"], "constraints": []}}


def _ring(rng, n, r_min, r_max, noise, a=1.0, b=1.0):
    t = rng.uniform(-math.pi, math.pi, size=n)
    r = rng.uniform(r_min, r_max, size=n) if r_max > r_min else np.full(n, float(r_min))
    x = np.stack([a * r * np.cos(t), b * r * np.sin(t)], axis=1)
    if noise:
        x = x + rng.normal(0.0, noise, size=x.shape)
    return x


@_register(
    "circle",
    "D^1D: O(2)-symmetric points (R cos t, R sin t) at fixed R, t uniform; optional Gaussian noise",
    ["x1", "x2"],
    radius=1.0,
    noise=0.0,
)
def _circle(rng, n, radius, noise):
    x = _ring(rng, n, radius, radius, noise)
    return x, {
        "intrinsic_dim": 1,
        "generator": "analytic",
        "dof": {"free": ["t"], "constraints": ["x1^2 + x2^2 = R^2"]},
    }


@_register(
    "annulus",
    "symmetry-broken circle: (R cos t, R sin t) with R uniform in [r_min, r_max] (the radius is a "
    "second degree of freedom)",
    ["x1", "x2"],
    r_min=0.5,
    r_max=1.5,
    noise=0.0,
)
def _annulus(rng, n, r_min, r_max, noise):
    if not r_max > r_min:
        raise ConfigError(f"toy 'annulus': need r_max > r_min, got [{r_min}, {r_max}]")
    x = _ring(rng, n, r_min, r_max, noise)
    return x, {"intrinsic_dim": 2, "generator": "analytic", "dof": {"free": ["t", "R"], "constraints": []}}


@_register(
    "ellipse",
    "O(2)-broken but still 1-D: (a cos t, b sin t), t uniform; not standardised (per-feature standardisation "
    "would turn it back into a circle)",
    ["x1", "x2"],
    standardise=False,
    a=1.5,
    b=0.5,
    noise=0.0,
)
def _ellipse(rng, n, a, b, noise):
    x = _ring(rng, n, 1.0, 1.0, noise, a=a, b=b)
    return x, {
        "intrinsic_dim": 1,
        "generator": "analytic",
        "dof": {"free": ["t"], "constraints": ["(x1/a)^2 + (x2/b)^2 = 1"]},
    }


@_register(
    "gaussian",
    "zero-mean Gaussian with per-direction variances lambda_i (optionally rotated); not "
    "standardised, for the linear-VAE toy theory",
    None,
    standardise=False,
    variances=(4.0, 1.0, 0.05),
    rotate=False,
)
def _gaussian(rng, n, variances, rotate):
    lam = np.asarray(variances, dtype=np.float64)
    if lam.ndim != 1 or lam.size == 0 or np.any(lam < 0):
        raise ConfigError(
            f"toy 'gaussian': variances must be a non-empty list of non-negative numbers, got {variances}"
        )
    x = rng.normal(size=(n, lam.size)) * np.sqrt(lam)
    basis = np.eye(lam.size)
    if rotate:
        basis, r = np.linalg.qr(rng.normal(size=(lam.size, lam.size)))
        basis = basis * np.sign(np.diag(r))
        x = x @ basis.T
    return x, {
        "intrinsic_dim": None,
        "generator": "analytic",
        "eigenvectors": basis.T.tolist(),
        "dof": {"free": [f"g{i}" for i in range(lam.size)], "constraints": []},
        "feature_names": [f"x{i + 1}" for i in range(lam.size)],
    }


# ------------------------------------------------------------------------------------------------- kinematics
def _back_to_back(e_half, cos_t, phi):
    """Massless back-to-back pair at rest: mu- along (theta, phi), mu+ opposite; returns (n, 2, 4)."""
    sin_t = np.sqrt(np.clip(1.0 - cos_t**2, 0.0, None))
    p3 = e_half[:, None] * np.stack([sin_t * np.cos(phi), sin_t * np.sin(phi), cos_t], axis=1)
    e = e_half[:, None]
    return np.stack([np.concatenate([e, p3], 1), np.concatenate([e, -p3], 1)], axis=1)


def _boost_z(p4, rapidity):
    """Boost 4-momenta (n, k, 4) along z by rapidity (n,)."""
    ch, sh = np.cosh(rapidity)[:, None], np.sinh(rapidity)[:, None]
    e, pz = p4[..., 0], p4[..., 3]
    out = p4.copy()
    out[..., 0] = ch * e + sh * pz
    out[..., 3] = sh * e + ch * pz
    return out


def _sample_cos_theta(rng, n, a_fb=0.0):
    """cos theta from 1 + cos^2 + (8/3) A_FB cos (accept-reject, envelope 2 + 8/3 |A_FB|)."""
    if abs(a_fb) > 0.75:
        raise ConfigError(f"A_FB must satisfy |A_FB| <= 3/4 for a positive density, got {a_fb}")
    out = np.empty(0)
    bound = 2.0 + 8.0 / 3.0 * abs(a_fb)
    while out.size < n:
        c = rng.uniform(-1.0, 1.0, size=2 * (n - out.size) + 16)
        keep = rng.uniform(0.0, bound, size=c.size) < 1.0 + c**2 + 8.0 / 3.0 * a_fb * c
        out = np.concatenate([out, c[keep]])
    return out[:n]


def _eta(p4):
    pt = np.hypot(p4[..., 1], p4[..., 2])
    return np.arcsinh(p4[..., 3] / np.maximum(pt, 1e-300))


def _acceptance(p4, eta_max, pt_min):
    ok = np.ones(p4.shape[0], dtype=bool)
    if eta_max is not None:
        ok &= np.all(np.abs(_eta(p4)) < eta_max, axis=1)
    if pt_min:
        ok &= np.all(np.hypot(p4[..., 1], p4[..., 2]) > pt_min, axis=1)
    return ok


@_register(
    "ee_mumu",
    "e+e- -> mu+mu- at fixed sqrt(s): massless back-to-back muons, cos theta from "
    "1 + cos^2 theta (+ (8/3) A_FB cos theta), phi uniform",
    MUON_FEATURES,
    sqrt_s=91.1876,
    a_fb=0.0,
)
def _ee_mumu(rng, n, sqrt_s, a_fb):
    cos_t = _sample_cos_theta(rng, n, a_fb)
    phi = rng.uniform(-math.pi, math.pi, size=n)
    p4 = _back_to_back(np.full(n, sqrt_s / 2.0), cos_t, phi)
    return p4.reshape(n, 8), {
        "intrinsic_dim": 2,
        "generator": "analytic",
        "dof": {
            "free": ["cos theta", "phi"],
            "constraints": ["E1 + E2 = sqrt(s)", "p1 + p2 = 0 (3)", "E1 = |p1|", "E2 = |p2|"],
        },
    }


# -------------------------------------------------------------------------------------------------- pp dimuon
def _lo_dimuon(rng, n, sqrt_s, m_min, m_max, lumi_power):
    """LO Drell-Yan sampler at zero dimuon pT (see the module docs of :func:`_pp_dimuon`)."""
    # truncated relativistic Breit-Wigner in m^2 by inverse CDF: m^2 = M^2 + M G tan(u)
    mg = M_Z * GAMMA_Z
    lo, hi = math.atan((m_min**2 - M_Z**2) / mg), math.atan((m_max**2 - M_Z**2) / mg)
    m = np.sqrt(M_Z**2 + mg * np.tan(rng.uniform(lo, hi, size=n)))
    # rapidity: weight (1 - x1)^b (1 - x2)^b with x1,2 = (m / sqrt s) e^{+-Y}, |Y| < ln(sqrt s / m)
    y_max = np.log(sqrt_s / m)
    y = np.empty(n)
    todo = np.arange(n)
    while todo.size:
        cand = rng.uniform(-1.0, 1.0, size=todo.size) * y_max[todo]
        tau_half = m[todo] / sqrt_s
        w = ((1 - tau_half * np.exp(cand)) * (1 - tau_half * np.exp(-cand))) ** lumi_power
        keep = rng.uniform(size=todo.size) < w / ((1 - tau_half) ** (2 * lumi_power))
        y[todo[keep]] = cand[keep]
        todo = todo[~keep]
    cos_t = _sample_cos_theta(rng, n)
    phi = rng.uniform(-math.pi, math.pi, size=n)
    return _boost_z(_back_to_back(m / 2.0, cos_t, phi), y)


def _pythia_dimuon(seed, n, sqrt_s, m_min, m_max, isr, accept):
    import pythia8mc

    pythia = pythia8mc.Pythia("", False)
    settings = [
        f"Beams:eCM = {sqrt_s}",
        "WeakSingleBoson:ffbar2gmZ = on",
        "23:onMode = off",
        "23:onIfAny = 13",
        f"PhaseSpace:mHatMin = {m_min}",
        f"PhaseSpace:mHatMax = {m_max}",
        "HadronLevel:all = off",
        "Random:setSeed = on",
        f"Random:seed = {seed % 900_000_000 + 1}",
        "Next:numberCount = 0",
        "Print:quiet = on",
    ]
    if isr:
        settings += ["PartonLevel:ISR = on", "PartonLevel:FSR = off", "PartonLevel:MPI = off"]
    else:
        settings += ["PartonLevel:all = off"]
    for s in settings:
        if not pythia.readString(s):
            raise RuntimeError(f"Pythia rejected the setting {s!r}")
    if not pythia.init():
        raise RuntimeError("Pythia initialisation failed")
    rows, tries = [], 0
    while len(rows) < n:
        tries += 1
        if tries > 50 * n + 1000:
            raise RuntimeError(f"pp_dimuon: only {len(rows)} of {n} events passed after {tries} tries")
        if not pythia.next():
            continue
        ev = pythia.event if isr else pythia.process
        mum = mup = None
        for i in range(ev.size()):
            p = ev[i]
            if p.isFinal() and p.id() == 13:
                mum = (p.e(), p.px(), p.py(), p.pz())
            elif p.isFinal() and p.id() == -13:
                mup = (p.e(), p.px(), p.py(), p.pz())
        if mum is None or mup is None:
            continue
        p4 = np.array([[mum, mup]], dtype=np.float64)
        if accept(p4)[0]:
            rows.append(p4[0])
    return np.stack(rows)


@_register(
    "pp_dimuon",
    "Drell-Yan pp -> Z/gamma* -> mu+mu- at sqrt(s) = 13 TeV in a mass window: Pythia 8 "
    "(hard process only, or with ISR) when pythia8mc is installed, else an LO sampler",
    MUON_FEATURES,
    sqrt_s=13000.0,
    m_min=60.0,
    m_max=120.0,
    eta_max=2.5,
    pt_min=0.0,
    generator="auto",
    isr=False,
    smear=0.0,
    lumi_power=5.0,
)
def _pp_dimuon(rng, n, sqrt_s, m_min, m_max, eta_max, pt_min, generator, isr, smear, lumi_power, *, seed):
    """pp -> Z/gamma* -> mu+mu-.

    ``generator="pythia"``: Pythia 8, ``WeakSingleBoson:ffbar2gmZ`` (full Z/gamma* interference), Z -> mu mu
    only, ``PhaseSpace:mHatMin/Max`` = the mass window; without ISR the hard process record is read
    (``PartonLevel:all = off``: no ISR, MPI or primordial kT, so the dimuon pT is exactly 0); with
    ``isr=True`` initial-state showers are on (FSR, MPI and hadronisation off) and the final muons of the
    event record are used.

    ``generator="lo"``: an LO sampler at zero dimuon pT: m from a relativistic Breit-Wigner (M_Z, Gamma_Z)
    truncated to the window (no photon term), the rapidity Y from the parton-luminosity shape ``(1 - x1)^b (1
    - x2)^b`` with ``x1,2 = (m / sqrt s) exp(+-Y)`` and ``b = lumi_power`` (valence-and-sea-like fall-off of x
    f(x); the ``(x1 x2)^a`` factor is constant at fixed m), cos theta* from ``1 + cos^2 theta*`` and phi
    uniform in the dimuon rest frame (Collins-Soper = rest frame with z along the beam at zero pT), then a
    boost along z. ``isr=True`` needs Pythia.

    ``generator="auto"``: Pythia when ``pythia8mc`` imports, else LO. Both apply the acceptance ``|eta_mu| <
    eta_max`` and ``pT_mu > pt_min`` to both muons (rejection, so exactly n events come back).

    ``smear > 0``: a detector-like resolution, each muon's momentum scaled by ``1 + smear * N(0, 1)`` (kept
    massless) after the acceptance; it breaks the pT balance, so two more degrees of freedom appear (of size ~
    smear).
    """
    if generator == "auto":
        generator = "pythia" if pythia_available() else "lo"
    if generator not in ("pythia", "lo"):
        raise ConfigError(f"toy 'pp_dimuon': generator must be 'auto', 'pythia' or 'lo', got {generator!r}")
    if isr and generator != "pythia":
        raise ConfigError("toy 'pp_dimuon': isr=True needs generator='pythia' (and pythia8mc installed)")

    def accept(p4):
        return _acceptance(p4, eta_max, pt_min)

    if generator == "pythia":
        p4 = _pythia_dimuon(seed, n, sqrt_s, m_min, m_max, isr, accept)
        name = "pythia"
    else:
        rows, have = [], 0
        while have < n:
            cand = _lo_dimuon(rng, max(2 * (n - have), 64), sqrt_s, m_min, m_max, lumi_power)
            cand = cand[accept(cand)]
            rows.append(cand)
            have += len(cand)
        p4 = np.concatenate(rows)[:n]
        name = "LO sampler"
    free = ["m", "Y", "cos theta*", "phi"]
    constraints = ["E1 = |p1|", "E2 = |p2|", "px1 + px2 = 0", "py1 + py2 = 0"]
    if isr:
        free, constraints = free + ["pT(mumu)", "phi(mumu)"], constraints[:2]
    if smear:
        # scale each muon's 3-momentum, keep it massless; applied after the acceptance, seeded by rng
        s = 1.0 + smear * rng.normal(size=(n, 2))
        p4 = p4 * s[..., None]
        if not isr:
            free, constraints = free + ["smear_1", "smear_2"], constraints[:2]
    dim = len(free)
    return p4.reshape(n, 8), {
        "intrinsic_dim": dim,
        "generator": name,
        "dof": {"free": free, "constraints": constraints},
    }


_NEEDS_SEED = {"pp_dimuon"}


# ------------------------------------------------------------------------------------------------- public API
def _constant(raw: np.ndarray, std: np.ndarray, rel_tol: float = 1e-9) -> np.ndarray:
    """Columns whose spread is zero up to rounding (relative to the column's magnitude)."""
    scale = np.maximum(np.abs(raw).max(axis=0), 1e-300)
    return std <= rel_tol * scale


def make_toy(
    name: str, n: int, seed: int = 0, standardise: bool | None = None, **kw
) -> tuple[np.ndarray, dict]:
    """Generate ``n`` events of the toy ``name``.

    Parameters
    ----------
    name : str
        One of :func:`available_toys`: ``plane``, ``circle``, ``annulus``, ``ellipse``, ``ee_mumu``,
        ``pp_dimuon``, ``gaussian``.
    n : int
        Number of rows.
    seed : int
        Seed; the same ``(name, n, seed, kw)`` gives the same array.
    standardise : bool, optional
        Standardise each kept feature to mean 0, std 1 and drop zero-variance features (default: True for
        every toy but ``gaussian``, whose variances are the point). Zero-variance features are dropped either
        way.
    **kw
        The toy's own parameters (see ``TOYS[name].defaults``); unknown keys raise a ConfigError.

    Returns
    -------
    x : np.ndarray
        ``(n, D)`` float64.
    meta : dict
        JSON-serialisable description (see the module docstring).
    """
    if name not in TOYS:
        hint = closest(name, TOYS)
        raise ConfigError(
            f"unknown toy {name!r}"
            + (f"; did you mean {hint!r}?" if hint else "")
            + f" (available: {', '.join(available_toys())})"
        )
    n = int(n)
    if n < 2:
        raise ConfigError(f"toy {name!r}: n must be >= 2, got {n}")
    spec = TOYS[name]
    check_keys(kw, spec.defaults, where=f"toy ({name})")
    params = {**spec.defaults, **kw}
    rng = np.random.default_rng(int(seed))
    extra = {"seed": int(seed)} if name in _NEEDS_SEED else {}
    raw, info = spec.fn(rng, n, **params, **extra)
    raw = np.asarray(raw, dtype=np.float64)
    names = list(info.pop("feature_names", spec.feature_names))
    if standardise is None:
        standardise = spec.standardise
    mean, std = raw.mean(axis=0), raw.std(axis=0)
    keep = ~_constant(raw, std)
    mean, std, x = mean[keep], std[keep], raw[:, keep]
    if standardise:
        x = (x - mean) / std
    kept = [nm for nm, k in zip(names, keep) if k]
    dropped = [nm for nm, k in zip(names, keep) if not k]
    meta = {
        "name": name,
        "n": n,
        "seed": int(seed),
        "params": {k: (list(v) if isinstance(v, tuple) else v) for k, v in params.items()},
        "description": spec.description,
        "feature_names": kept,
        "raw_feature_names": names,
        "dropped": dropped,
        "standardised": bool(standardise),
        "mean": mean.tolist(),
        "std": std.tolist(),
        **info,
    }
    return x, meta


def write_toy(name: str, n: int, seed: int, out, **kw) -> Path:
    """Generate a toy and write it atomically to ``out`` (.npz with ``x``, ``feature_names`` and ``meta`` as
    JSON).

    The file is written to ``out + ".tmp"`` first and renamed, so a reader never sees a half-written file.
    Returns the path written.
    """
    x, meta = make_toy(name, n, seed, **kw)
    out = Path(out)
    if out.suffix != ".npz":
        out = out.with_name(out.name + ".npz")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, x=x, feature_names=np.array(meta["feature_names"]), meta=np.array(json.dumps(meta)))
    os.replace(tmp, out)
    return out


def _raw_features(x: np.ndarray, meta: dict) -> dict[str, np.ndarray]:
    """Undo the standardisation: raw feature columns by name (dropped constant features restored)."""
    cols = {}
    mean, std = np.asarray(meta["mean"]), np.asarray(meta["std"])
    for j, name in enumerate(meta["feature_names"]):
        cols[name] = x[:, j] * std[j] + mean[j] if meta["standardised"] else x[:, j]
    return cols


def generator_variables(x: np.ndarray, meta: dict) -> dict[str, np.ndarray]:
    """The generator's own variables of toy events ``x`` (as returned by :func:`lgae.data.toys.make_toy`).

    2-D toys: polar angle ``t`` and radius ``r`` of the raw point; ``ee_mumu``: ``cos theta`` and ``phi`` of
    the mu-; ``pp_dimuon``: ``m``, ``Y`` (dimuon rapidity), ``cos theta*`` and ``phi*`` of the mu- in the
    dimuon rest frame (z along the beam, which is the Collins-Soper frame at zero dimuon pT). Empty for other
    toys.
    """
    c = _raw_features(x, meta)
    name = meta.get("name")
    if name in TWO_D:
        return {"t (polar angle)": np.arctan2(c["x2"], c["x1"]), "r (radius)": np.hypot(c["x1"], c["x2"])}
    if name == "ee_mumu":
        p = np.stack([c["mum_px"], c["mum_py"], c["mum_pz"]], 1)
        return {"cos theta": p[:, 2] / np.linalg.norm(p, axis=1), "phi": np.arctan2(p[:, 1], p[:, 0])}
    if name == "pp_dimuon":
        mum = np.stack([c[f"mum_{k}"] for k in ("E", "px", "py", "pz")], 1)
        mup = np.stack([c[f"mup_{k}"] for k in ("E", "px", "py", "pz")], 1)
        tot = mum + mup
        m = np.sqrt(np.clip(tot[:, 0] ** 2 - (tot[:, 1:] ** 2).sum(1), 0, None))
        y = 0.5 * np.log((tot[:, 0] + tot[:, 3]) / (tot[:, 0] - tot[:, 3]))
        # boost the mu- along z by -Y, then along the (small) transverse dimuon momentum is ignored (zero at
        # LO)
        ch, sh = np.cosh(y), np.sinh(y)
        pz = ch * mum[:, 3] - sh * mum[:, 0]
        p3 = np.stack([mum[:, 1], mum[:, 2], pz], 1)
        return {
            "m [GeV]": m,
            "Y": y,
            "cos theta*": pz / np.linalg.norm(p3, axis=1),
            "phi*": np.arctan2(mum[:, 2], mum[:, 1]),
        }
    return {}


def read_toy(path) -> tuple[np.ndarray, dict]:
    """Read a file written by :func:`write_toy`: ``(x, meta)``."""
    with np.load(path, allow_pickle=False) as f:
        return f["x"], json.loads(str(f["meta"]))
