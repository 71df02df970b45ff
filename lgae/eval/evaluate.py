"""The anomaly-detection evaluator: score background and signal jets with a trained run; metrics and plots.

``evaluate_run(run_dir, background, signals)`` loads a run with :func:`lgae.train.load_run`, reads every file
with :func:`lgae.data.prepare_jets` and the run's own ``data`` config (the preprocessing used in training),
scores every jet with ``model.scores`` (all the scores the model offers; ``"default"`` is the *primary* one,
fixed before any test data is seen), and writes into the run directory:

* ``metrics.json``: per signal and combined, for the primary score (top level) and for every score and
  baseline: AUC (never flipped), eps_s at eps_b in {1e-1, 1e-2, 1e-3} with uncertainties and the ``resolved``
  flag, n_sig, n_bkg; the plain jet mass (and soft-drop mass, constituent multiplicity where present) as
  reference "scores"; the reconstruction quality for models that return 4-momenta (on the first ``recon_jets``
  jets of each class: relative errors of pT, E and jet mass, differences of eta and phi, median and IQR;
  particles matched one-to-one by the Hungarian algorithm); model size and evaluation speed.
* ``scores.npz``: ``score`` (primary), ``label`` (0 = background, i = ``signal_names[i - 1]``),
  ``score_<name>`` for every score the model offers, ``baseline_<name>`` for the reference observables,
  ``signal_names``.
* PNG plots (see :mod:`lgae.eval.plots`).

Nothing here depends on the model class: a model with ``out.p4 = None`` simply has no reconstruction section.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._validate import ConfigError, check_keys
from .metrics import EPS_B_TARGETS, MIN_BKG_PASS, InvertedScoreWarning, ad_metrics, median_iqr

#: keys accepted in a run config's ``evaluate:`` section
EVALUATE_KEYS = (
    "task",
    "background",
    "signals",
    "score",
    "n_boot",
    "batch_size",
    "max_jets",
    "recon_jets",
    "workers",
)
#: jets (all samples together) from which ``evaluate`` scores in worker processes by default
AUTO_WORKERS_MIN_JETS = 20_000
#: values of ``evaluate.task``
TASKS = ("standard", "inverse")
#: names a background sample gets in the inverse task (train on top, detect QCD)
_INVERSE_BACKGROUNDS = ("top", "t", "ttbar")
#: jet-level observables of the files used as extra reference scores (the first key found in ``jets.jet``):
#: the soft-drop mass, and the mass / multiplicity of the *whole* jet (all constituents, not only the stored)
BASELINE_KEYS = {
    "sd_mass": ("sd_mass", "msoftdrop", "softdrop_mass", "mass_sd", "sdmass", "jet_sdmass"),
    "jet_mass_all": ("mass", "jet_mass"),
    "n_particles_all": ("n_particles", "n_constituents", "nparticles", "jet_nparticles"),
}
#: class names of the one-hot label branches (weaver / JetClass names) -> short process names
_LABEL_NAMES = {
    "label_QCD": "qcd",
    "label_Tbqq": "top",
    "label_Tbl": "top_lep",
    "label_Wqq": "w",
    "label_Zqq": "z",
    "label_Hbb": "hbb",
}
#: name fragments of sample files that are not part of the process name (``top_test.root`` -> ``top``)
_STEM_NOISE = {
    "test",
    "train",
    "val",
    "valid",
    "jets",
    "jet",
    "30p",
    "p4",
    "eval",
    "sample",
    "data",
    "pythia",
}


def validate_evaluate_config(section: Mapping | None) -> dict:
    """Check a run config's ``evaluate:`` section; returns a plain dict (empty when absent)."""
    if section is None:
        return {}
    if not isinstance(section, Mapping):
        raise ConfigError(f"section 'evaluate' must be a mapping, got {type(section).__name__}")
    section = dict(section)
    check_keys(section, EVALUATE_KEYS, where="evaluate")
    task = section.get("task")
    if task is not None and task not in TASKS:
        raise ConfigError(f"evaluate.task: expected one of {', '.join(TASKS)}, got {task!r}")
    for key in ("n_boot", "batch_size", "max_jets", "recon_jets"):
        v = section.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
            raise ConfigError(f"evaluate.{key}: expected a non-negative integer or null, got {v!r}")
    v = section.get("workers")
    if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
        raise ConfigError(f"evaluate.workers: expected a positive integer or null (auto), got {v!r}")
    sig = section.get("signals")
    if sig is not None and not isinstance(sig, (str, list, Mapping)):
        raise ConfigError("evaluate.signals: expected a path, a list of paths or a mapping name -> path")
    return section


# ------------------------------------------------------------------------------------------------------------
# samples
# ------------------------------------------------------------------------------------------------------------


@dataclass
class Sample:
    """Jets of one class, as numpy arrays."""

    name: str
    p4: np.ndarray  # (N, n, 4) float64, GeV
    mask: np.ndarray  # (N, n) bool
    jet: dict = field(default_factory=dict)  # jet-level arrays (N,)
    path: str | None = None

    def __len__(self) -> int:
        return int(self.p4.shape[0])

    def head(self, n: int | None) -> Sample:
        if n is None or n >= len(self):
            return self
        jet = {k: v[:n] for k, v in self.jet.items() if np.ndim(v) >= 1 and len(v) == len(self)}
        return Sample(self.name, self.p4[:n], self.mask[:n], jet, self.path)


def _numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def sample_from_jets(jets: Any, name: str, path: str | None = None) -> Sample:
    """Wrap a ``Jets`` (``p4``, ``mask``, optional ``jet`` dict; numpy or torch) as a :class:`Sample`."""
    p4 = _numpy(jets.p4).astype(np.float64, copy=False)
    mask = getattr(jets, "mask", None)
    mask = np.ones(p4.shape[:2], bool) if mask is None else _numpy(mask).astype(bool)
    jet_raw = getattr(jets, "jet", None) or {}
    jet = {}
    for k, v in dict(jet_raw).items():
        try:
            a = _numpy(v)
        except Exception:  # noqa: BLE001 - ignore non-array entries
            continue
        if a.ndim == 1 and a.shape[0] == p4.shape[0] and np.issubdtype(a.dtype, np.number):
            jet[k] = a
    return Sample(name=name, p4=p4, mask=mask, jet=jet, path=path)


def sample_name(path: str | os.PathLike, jets: Any = None) -> str:
    """Name of a sample: the class its jets carry (one label, or the generator's metadata), else the stem.

    ``data/top_test.root`` -> ``top``; ``qcd_jets_30p.root`` -> ``qcd``; ``my_signal.root`` -> ``my_signal``.
    """
    for attr in ("name", "process", "label_name"):
        v = getattr(jets, attr, None) if jets is not None else None
        if isinstance(v, str) and v:
            return v
    meta = getattr(jets, "meta", None) if jets is not None else None
    if isinstance(meta, Mapping):
        for key in ("process", "name"):
            if isinstance(meta.get(key), str) and meta[key]:
                return meta[key]
    label_names = getattr(jets, "label_names", None) if jets is not None else None
    label = getattr(jets, "label", None) if jets is not None else None
    if label_names and label is not None:
        vals = np.unique(_numpy(label))
        if vals.size == 1 and 0 <= int(vals[0]) < len(label_names):
            raw = str(label_names[int(vals[0])])
            return _LABEL_NAMES.get(raw, raw.removeprefix("label_").lower())
    if str(path).endswith(".root"):
        try:
            from ..data.pythia import read_metadata

            proc = read_metadata(path).get("process")
            if isinstance(proc, str) and proc:
                return proc
        except Exception:  # noqa: BLE001 - not a generator file: fall back to the stem
            pass
    stem = Path(str(path)).name
    for suffix in (".root", ".yaml", ".yml", ".h5", ".hdf5", ".parquet", ".npz", ".pt"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    tokens = [t for t in re.split(r"[_\-.]+", stem) if t]
    kept = [
        t for t in tokens if t.lower() not in _STEM_NOISE and not re.fullmatch(r"(seed|s)?\d+", t.lower())
    ]
    return "_".join(kept) if kept else stem


def parse_sample_arg(text: str) -> tuple[str | None, str]:
    """``"top=data/t.root"`` -> ``("top", "data/t.root")``; ``"data/t.root"`` -> ``(None, "data/t.root")``."""
    if "=" in text and not Path(text).exists():
        name, path = text.split("=", 1)
        if name and re.fullmatch(r"[A-Za-z0-9_\-+]+", name):
            return name, path
    return None, text


def load_sample(
    path: str | os.PathLike, data_config: Mapping | None, name: str | None = None, max_jets: int | None = None
) -> Sample:
    """Read one sample with the run's preprocessing (``lgae.data.prepare_jets``, the run's ``data`` config).

    ``path`` is a ROOT file (or glob), or a YAML sample file, either a generated-sample spec
    ``{out: FILE, process: top, n_jets: 2000, seed: 3, ...}`` (generated when ``FILE`` does not exist yet) or
    ``{files: FILE_OR_GLOB_OR_LIST, name: top, reader: {...}}`` (``reader`` replaces the run's reader config,
    for files with other branch names).
    """
    from ..data import prepare_jets

    data_config = dict(data_config or {})
    source: Any = str(path)
    label = str(path)
    if str(path).endswith((".yaml", ".yml")):
        source, yaml_name, reader = _read_sample_yaml(Path(path))
        name = name or yaml_name
        if reader is not None:
            data_config["reader"] = reader
        label = str(source.get("out")) if isinstance(source, Mapping) else str(path)
    jets = prepare_jets(source, data_config, max_jets=max_jets)
    s = sample_from_jets(jets, name or sample_name(label, jets), path=str(path))
    if not any(k in s.jet for k in BASELINE_KEYS["sd_mass"]):
        sd = _read_sdmass(label, jets)
        if sd is not None:
            s.jet["sd_mass"] = sd
    return s.head(max_jets)


def _read_sample_yaml(path: Path) -> tuple[Any, str | None, Any]:
    """``(source for prepare_jets, name or None, reader config or None)`` from a YAML sample file."""
    import yaml

    try:
        spec = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"sample file not found: {path}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(spec, Mapping):
        raise ConfigError(
            f"{path}: a sample YAML must be a mapping ({{out: ..., process: ...}} or {{files: ...}})"
        )
    spec = dict(spec)
    base = path.parent
    if "out" in spec:
        out = Path(spec["out"])
        spec["out"] = str(out if out.is_absolute() else base / out)
        return spec, spec.get("process"), None
    check_keys(spec, ("files", "name", "reader"), where=f"sample file {path}", required=("files",))
    files = spec["files"]
    files = [files] if isinstance(files, str) else list(files)
    files = [f if Path(f).is_absolute() else str(base / f) for f in files]
    return (files[0] if len(files) == 1 else files), spec.get("name"), spec.get("reader")


def _read_sdmass(path, jets) -> np.ndarray | None:
    """The generator's ``jet_sdmass`` branch for the jets read (by entry number), when the file has it."""
    entry = getattr(jets, "entry", None)
    source = getattr(jets, "source", None) or []
    if entry is None or len(source) != 1 or not str(source[0]).endswith(".root"):
        return None
    try:
        import uproot

        with uproot.open(source[0]) as f:
            trees = [k for k, c in f.classnames().items() if c == "TTree"]
            if not trees:
                return None
            tree = f[trees[0]]
            if "jet_sdmass" not in tree.keys():
                return None
            sd = np.asarray(tree["jet_sdmass"].array(library="np"), dtype=np.float64)
        entry = _numpy(entry).astype(np.int64)
        if entry.size != len(jets) or (entry.size and entry.max() >= sd.size):
            return None
        return sd[entry]
    except Exception:  # noqa: BLE001 - optional extra observable
        return None


# ------------------------------------------------------------------------------------------------------------
# scoring
# ------------------------------------------------------------------------------------------------------------


def _model_device_dtype(model):
    import torch

    ref = next(iter(model.parameters()), None)
    if ref is None:
        ref = next(iter(model.buffers()), None)
    if ref is None:
        return torch.device("cpu"), torch.get_default_dtype()
    dtype = ref.dtype if ref.is_floating_point() else torch.get_default_dtype()
    return ref.device, dtype


def _pt_eta_phi(p4: np.ndarray):
    px, py, pz = p4[..., 1], p4[..., 2], p4[..., 3]
    pt = np.hypot(px, py)
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.where(pt > 0, np.arcsinh(pz / np.where(pt > 0, pt, 1.0)), 0.0)
    phi = np.arctan2(py, px)
    return pt, eta, phi


def _mass(p4: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", over="ignore"):
        m2 = p4[..., 0] ** 2 - (p4[..., 1:] ** 2).sum(-1)
        return np.sqrt(np.clip(m2, 0, None))


def _wrap(dphi: np.ndarray) -> np.ndarray:
    return np.remainder(dphi + np.pi, 2 * np.pi) - np.pi


def jet_observables(p4: np.ndarray, mask: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Jet 4-momentum sums and their pT, eta, phi, mass, E: ``{name: (N,)}``."""
    if mask is not None:
        p4 = p4 * mask[..., None]
    j = p4.sum(-2)
    pt, eta, phi = _pt_eta_phi(j)
    return {"pt": pt, "eta": eta, "phi": phi, "mass": _mass(j), "energy": j[..., 0]}


def _match_particles(x: np.ndarray, mx: np.ndarray, y: np.ndarray, my: np.ndarray | None):
    """Hungarian matching of the real input particles ``x[mx]`` to the output slots of ``y`` (on 4-momenta).

    Returns index arrays ``(i_in, i_out)`` (possibly shorter than ``mx.sum()`` when the output has fewer
    slots).
    """
    from scipy.optimize import linear_sum_assignment

    xi = np.nonzero(mx)[0]
    yi = np.arange(y.shape[0]) if my is None else np.nonzero(my)[0]
    if xi.size == 0 or yi.size == 0:
        return xi[:0], yi[:0]
    with np.errstate(invalid="ignore", over="ignore"):
        d = ((x[xi, None, :] - y[None, yi, :]) ** 2).sum(-1)
    d = np.nan_to_num(d, nan=1e300, posinf=1e300)  # a non-finite reconstruction matches last
    r, c = linear_sum_assignment(d)
    return xi[r], yi[c]


class _ReconAccumulator:
    """Jet-level and (for the first ``max_jets``) particle-level reconstruction errors of one class."""

    def __init__(self, max_jets: int):
        self.max_jets = max_jets
        self.n_particle_jets = 0
        self.n_nonfinite = 0
        self.jet_in: dict[str, list] = {}
        self.jet_out: dict[str, list] = {}
        self.part: dict[str, list] = {"pt_rel_err": [], "eta_diff": [], "phi_diff": [], "energy_rel_err": []}

    def add(self, p4_in: np.ndarray, mask: np.ndarray, p4_out: np.ndarray, mask_out: np.ndarray | None):
        with np.errstate(all="ignore"):
            self._add(p4_in, mask, p4_out, mask_out)

    def _add(self, p4_in, mask, p4_out, mask_out):
        bad = ~np.isfinite(p4_out if mask_out is None else p4_out * mask_out[..., None]).all(axis=(1, 2))
        self.n_nonfinite += int(bad.sum())
        jin = jet_observables(p4_in, mask)
        jout = jet_observables(p4_out, mask_out)
        for k in jin:
            self.jet_in.setdefault(k, []).append(jin[k])
            self.jet_out.setdefault(k, []).append(jout[k])
        n_take = min(self.max_jets - self.n_particle_jets, p4_in.shape[0])
        for b in range(max(n_take, 0)):
            i_in, i_out = _match_particles(
                p4_in[b], mask[b], p4_out[b], None if mask_out is None else mask_out[b]
            )
            if i_in.size == 0:
                continue
            a, r = p4_in[b, i_in], p4_out[b, i_out]
            pt_a, eta_a, phi_a = _pt_eta_phi(a)
            pt_r, eta_r, phi_r = _pt_eta_phi(r)
            with np.errstate(divide="ignore", invalid="ignore"):
                self.part["pt_rel_err"].append((pt_r - pt_a) / pt_a)
                self.part["energy_rel_err"].append((r[:, 0] - a[:, 0]) / a[:, 0])
            self.part["eta_diff"].append(eta_r - eta_a)
            self.part["phi_diff"].append(_wrap(phi_r - phi_a))
        self.n_particle_jets += max(n_take, 0)

    def summary(self) -> dict:
        jin = {k: np.concatenate(v) for k, v in self.jet_in.items()}
        jout = {k: np.concatenate(v) for k, v in self.jet_out.items()}
        out: dict[str, Any] = {
            "jet": {},
            "particle": {},
            "n_jets": int(jin["mass"].size),
            "n_jets_particle_level": int(self.n_particle_jets),
            "n_jets_nonfinite_output": int(self.n_nonfinite),
            "definitions": "rel_err = (reconstructed - input) / input; *_diff = reconstructed - "
            "input (phi wrapped); particles matched one-to-one by the Hungarian algorithm on "
            "4-momenta; median and IQR over finite values",
        }
        with np.errstate(all="ignore"):
            for k in ("pt", "mass", "energy"):
                out["jet"][f"{k}_rel_err"] = median_iqr((jout[k] - jin[k]) / jin[k])
        out["jet"]["eta_diff"] = median_iqr(jout["eta"] - jin["eta"])
        out["jet"]["phi_diff"] = median_iqr(_wrap(jout["phi"] - jin["phi"]))
        for k, v in self.part.items():
            out["particle"][k] = median_iqr(np.concatenate(v) if v else np.zeros(0))
        self.arrays = {"mass_in": jin["mass"], "mass_out": jout["mass"]}
        return out


def _checked_scores(model, scores, n: int) -> dict[str, np.ndarray]:
    """``model.scores`` output as float64 arrays of shape ``(n,)``; a dict with a ``"default"`` key, else an
    error naming what came."""
    if not isinstance(scores, Mapping) or "default" not in scores:
        raise TypeError(
            f"{type(model).__name__}.scores must return a dict with a 'default' key, got "
            f"{type(scores).__name__} with keys {list(scores) if isinstance(scores, Mapping) else '-'}"
        )
    out = {}
    for k, v in scores.items():
        a = _numpy(v).astype(np.float64).reshape(-1)
        if a.shape[0] != n:
            raise ValueError(f"score {k!r} has shape {tuple(np.shape(v))}, expected ({n},)")
        out[k] = a
    return out


def score_sample(
    model,
    sample: Sample,
    batch_size: int = 512,
    recon_jets: int = 2000,
    progress: bool = True,
    scorer=None,
) -> tuple[dict[str, np.ndarray], _ReconAccumulator | None, float]:
    """Score every jet of a sample with ``model.scores`` under ``no_grad``.

    Returns ``(scores, recon, seconds)``: ``scores`` maps each score name to ``(N,)``; ``recon`` holds the
    reconstruction errors when the model returns 4-momenta (None otherwise); ``seconds`` is the wall time of
    the scoring passes only (for the jets/s figure). With ``scorer`` (a
    :class:`lgae.eval.parallel.ProcessScorer` of ``model.scores``) the scores come from its worker processes
    and this process only reconstructs the first ``recon_jets`` jets.
    """
    import torch
    from tqdm.auto import tqdm

    device, dtype = _model_device_dtype(model)
    chunks: dict[str, list] = {}
    recon: _ReconAccumulator | None = _ReconAccumulator(recon_jets)
    has_p4 = None
    seconds = 0.0
    n = len(sample)
    if scorer is not None:
        t0 = time.perf_counter()
        scores = scorer.score(sample.p4, sample.mask, progress=progress, desc=f"scoring {sample.name}")
        seconds = time.perf_counter() - t0
        chunks = {k: [a] for k, a in _checked_scores(model, scores, n).items()}
    bar = tqdm(
        total=n if scorer is None else min(n, recon_jets),
        desc=f"{'scoring' if scorer is None else 'reconstructing'} {sample.name}",
        unit="jet",
        disable=not progress or not sys.stderr.isatty(),
        leave=False,
    )
    with torch.no_grad():
        for start in range(0, n if scorer is None else min(n, recon_jets), batch_size):
            p4_np = sample.p4[start : start + batch_size]
            m_np = sample.mask[start : start + batch_size]
            p4 = torch.as_tensor(p4_np, dtype=dtype, device=device)
            mask = torch.as_tensor(m_np, dtype=torch.bool, device=device)
            if scorer is None:
                t0 = time.perf_counter()
                scores = model.scores(p4, mask)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                seconds += time.perf_counter() - t0
                for k, a in _checked_scores(model, scores, p4_np.shape[0]).items():
                    chunks.setdefault(k, []).append(a)
            if (
                has_p4 is not False and start < recon_jets
            ):  # reconstruction quality: the first recon_jets jets
                out = model(p4, mask)
                if getattr(out, "p4", None) is None:
                    has_p4 = False
                else:
                    has_p4 = True
                    mask_out = (out.extras or {}).get("mask") if hasattr(out, "extras") else None
                    p4_out = _numpy(out.p4).astype(np.float64)
                    m_out = None if mask_out is None else _numpy(mask_out).astype(bool)
                    if m_out is not None and m_out.shape != p4_out.shape[:2]:
                        m_out = None
                    recon.add(p4_np, m_np, p4_out, m_out)
            bar.update(p4_np.shape[0])
    bar.close()
    return (
        {k: np.concatenate(v) for k, v in chunks.items()},
        (recon if has_p4 and recon.jet_in else None),
        seconds,
    )


def _sanitize_scores(all_scores: list[dict], names: list[str]) -> dict:
    """Replace NaN scores by +inf in place (a jet the model cannot reconstruct counts as most anomalous) and
    return ``{score: {class: count}}`` of the replaced values (also warned about): a model bug to look at."""
    out: dict[str, dict] = {}
    for sc, name in zip(all_scores, names):
        for k, v in sc.items():
            bad = np.isnan(v)
            if bad.any():
                out.setdefault(k, {})[name] = int(bad.sum())
                v[bad] = np.inf
    if out:
        warnings.warn(
            f"NaN anomaly scores replaced by +inf (counted as most anomalous): {out}",
            RuntimeWarning,
            stacklevel=3,
        )
    return out


def baseline_scores(sample: Sample) -> dict[str, np.ndarray]:
    """Reference observables used as "scores" (higher = more signal-like, as for an anomaly score).

    ``jet_mass`` and ``n_particles``: mass and number of the particles the model sees (the input slots);
    from the file when present: ``sd_mass`` (soft-drop), ``jet_mass_all`` and ``n_particles_all`` (all
    constituents of the jet, before the truncation to n_particles).
    """
    out = {
        "jet_mass": jet_observables(sample.p4, sample.mask)["mass"],
        "n_particles": sample.mask.sum(1).astype(np.float64),
    }
    for name, keys in BASELINE_KEYS.items():
        for k in keys:
            if k in sample.jet:
                out[name] = np.asarray(sample.jet[k], dtype=np.float64)
                break
    return out


# ------------------------------------------------------------------------------------------------------------
# the evaluation
# ------------------------------------------------------------------------------------------------------------


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _json_clean(obj):
    """NaN/inf -> None, numpy scalars -> Python, so that the JSON is standard."""
    if isinstance(obj, Mapping):
        return {str(k): _json_clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path: str | os.PathLike, obj) -> None:
    text = json.dumps(_json_clean(obj), indent=2, allow_nan=False)
    _atomic_write(Path(path), lambda f: f.write(text.encode()))


def model_info(model, config: Mapping | None = None, n_particles: int | None = None) -> dict:
    """Model name, parameter count, latent size and compression ratio.

    The compression ratio is ``latent_dim / (4 * n_particles)``: one denominator for every model, the number
    of real inputs (E, px, py, pz of each particle slot; 120 for 30 particles). ``model_input_dim`` is what
    the model itself reports (e.g. 3 x 30 relative coordinates, or 40 x 40 pixels) and is kept for reference
    only.
    """
    config = dict(config or {})
    info: dict[str, Any] = {
        "model": getattr(model, "name", type(model).__name__),
        "class": type(model).__name__,
    }
    try:
        info["n_params"] = int(model.n_params)
    except Exception:  # noqa: BLE001
        info["n_params"] = int(sum(p.numel() for p in model.parameters()))
    for key, fn in (("latent_dim", "latent_dim"), ("model_input_dim", "input_dim")):
        try:
            v = getattr(model, fn)()
            info[key] = None if v is None else int(v)
        except Exception:  # noqa: BLE001 - optional
            info[key] = None
    if n_particles is None:
        n = (config.get("data") or {}).get("n_particles")
        n_particles = n if isinstance(n, int) else None
    info["n_particles"] = n_particles
    info["input_dim"] = 4 * n_particles if n_particles else None
    if info.get("latent_dim") and info.get("input_dim"):
        info["compression"] = info["latent_dim"] / info["input_dim"]
    else:
        info["compression"] = None
    info["compression_denominator"] = "input_dim = 4 x n_particles (E, px, py, pz of every particle slot)"
    info["config_name"] = config.get("name")
    info["seed"] = (config.get("trainer") or {}).get("seed")
    model_cfg = config.get("model") or {}
    info["model_config"] = {
        k: v for k, v in model_cfg.items() if isinstance(v, (int, float, str, bool, type(None)))
    }
    return info


def infer_task(config: Mapping | None, background_name: str) -> str:
    """``evaluate.task`` when set; else ``"inverse"`` when the run's name says so or the background is top
    jets; else ``"standard"``."""
    ev = (config or {}).get("evaluate") or {}
    if ev.get("task"):
        return str(ev["task"])
    if "inverse" in str((config or {}).get("name") or "").lower():
        return "inverse"
    return "inverse" if background_name.lower() in _INVERSE_BACKGROUNDS else "standard"


def evaluate_model(
    model,
    config: Mapping | None,
    background: Sample,
    signals: Sequence[Sample],
    out_dir: str | os.PathLike,
    primary: str = "default",
    n_boot: int = 200,
    batch_size: int = 512,
    recon_jets: int = 2000,
    targets: Sequence[float] = EPS_B_TARGETS,
    plots: bool = True,
    progress: bool = True,
    seed: int = 0,
    workers: int | None = None,
) -> dict:
    """Evaluate a loaded model on background and signal samples; write metrics.json, scores.npz, plots.

    Parameters
    ----------
    model : JetAutoencoder
        Any registered model (``model.scores`` with a ``"default"`` key, ``model(p4, mask).p4`` or None).
    config : mapping
        The run's resolved config (names the run; ``evaluate.task`` tags the inverse task).
    background, signals : Sample
        Background jets (label 0) and one or more signal samples (labels 1, 2, ...). Names must be distinct.
    out_dir : path
        Where to write (the run directory).
    primary : str
        The score reported at the top level and plotted first. ``"default"`` (the model's own choice, fixed a
        priori) unless the user decides otherwise *before* looking at the results.
    n_boot : int
        Bootstrap resamplings for the primary score's uncertainties (0: analytic/binomial only). Alternatives
        and baselines get analytic/binomial errors.
    workers : int, optional
        Score in this many single-threaded worker processes (:class:`lgae.eval.parallel.ProcessScorer`; CPU
        models only). Default (None): one per usable core when the samples hold at least
        ``AUTO_WORKERS_MIN_JETS`` jets together (the workers' start-up, a few seconds, then pays), else 1
        (in this process).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not signals:
        raise ValueError("evaluate: at least one signal sample is needed")
    names = [s.name for s in signals]
    if len(set(names)) != len(names) or background.name in names:
        raise ValueError(
            f"evaluate: sample names must be distinct, got background {background.name!r} and {names}"
        )
    model.eval()
    samples = [background, *signals]
    all_scores, recons, seconds, n_scored = [], [], 0.0, 0
    n_workers = resolve_workers(workers, model, sum(len(s) for s in samples))
    scorer = None
    if n_workers > 1:
        from .parallel import ProcessScorer

        scorer = ProcessScorer(model, workers=n_workers, method="scores", batch_size=batch_size)
    try:
        if scorer is not None:  # start the workers before the timed scoring (eval_jets_per_s)
            scorer.warm_up(background.p4, background.mask)
        for s in samples:
            sc, rec, sec = score_sample(
                model, s, batch_size=batch_size, recon_jets=recon_jets, progress=progress, scorer=scorer
            )
            all_scores.append(sc)
            recons.append(rec)
            seconds += sec
            n_scored += len(s)
    finally:
        if scorer is not None:
            scorer.close()
    score_names = list(all_scores[0])
    nonfinite = _sanitize_scores(all_scores, [s.name for s in samples])
    if primary not in score_names:
        raise ValueError(f"score {primary!r} not offered by {type(model).__name__}; available: {score_names}")
    baselines = [baseline_scores(s) for s in samples]
    baseline_names = [k for k in baselines[0] if all(k in b for b in baselines)]

    def metrics_for(get, n_b, name, warn):
        bkg = get(0)
        sig = {s.name: get(i + 1) for i, s in enumerate(signals)}
        return ad_metrics(bkg, sig, targets=targets, n_boot=n_b, seed=seed, warn=warn, name=name)

    scores_out = {}
    below = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", InvertedScoreWarning)
        for k in score_names:
            is_primary = k == primary
            m = metrics_for(lambda i, k=k: all_scores[i][k], n_boot if is_primary else 0, k, warn=is_primary)
            m["primary"] = is_primary
            scores_out[k] = m
        base_out = {}
        for k in baseline_names:
            base_out[k] = metrics_for(lambda i, k=k: baselines[i][k], 0, k, warn=False)
    for w in caught:
        if issubclass(w.category, InvertedScoreWarning):
            below.append(str(w.message))
            warnings.warn(w.message, InvertedScoreWarning, stacklevel=2)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)

    data_cfg = (config or {}).get("data")
    n_slots = data_cfg.get("n_particles") if isinstance(data_cfg, Mapping) else None
    info = model_info(model, config, n_slots if isinstance(n_slots, int) else int(background.p4.shape[1]))
    recon_out = None
    recon_arrays = None
    if any(r is not None for r in recons):
        recon_out = {}
        recon_arrays = {}
        for s, r in zip(samples, recons):
            if r is None:
                continue
            recon_out[s.name] = r.summary()
            recon_arrays[s.name] = r.arrays
    task = infer_task(config, background.name)
    prim = scores_out[primary]
    result = {
        "run_dir": str(out_dir),
        "name": (config or {}).get("name"),
        "task": task,
        "background": background.name,
        "signals": names,
        "files": {s.name: s.path for s in samples},
        "primary_score": primary,
        "score_names": score_names,
        "eps_b_targets": [float(t) for t in targets],
        "resolved_rule": f"resolved when n_bkg * eps_b >= {MIN_BKG_PASS}",
        "interpolation": "eps_s linear in eps_b between the bracketing ROC vertices (randomised threshold)",
        "n_bkg": len(background),
        "n_sig": {s.name: len(s) for s in signals},
        "n_boot": int(n_boot),
        # the primary score, at the top level
        "auc": prim["combined"]["auc"],
        "per_signal": prim["per_signal"],
        "combined": prim["combined"],
        "scores": scores_out,
        "baselines": base_out,
        "reconstruction": recon_out,
        "model_info": info,
        "timing": {
            "eval_seconds": seconds,
            "eval_jets_per_s": (n_scored / seconds) if seconds > 0 else None,
            "n_jets_scored": n_scored,
            "eval_workers": n_workers,
        },
        "warnings": below,
        "nan_scores": nonfinite,
    }
    write_json(out_dir / "metrics.json", result)

    label = np.concatenate([np.full(len(s), i, dtype=np.int64) for i, s in enumerate(samples)])
    arrays = {
        "score": np.concatenate([sc[primary] for sc in all_scores]),
        "label": label,
        "signal_names": np.array(names),
        "background_name": np.array(background.name),
        "primary_score": np.array(primary),
    }
    for k in score_names:
        arrays[f"score_{k}"] = np.concatenate([sc[k] for sc in all_scores])
    for k in baseline_names:
        arrays[f"baseline_{k}"] = np.concatenate([b[k] for b in baselines])
    _atomic_write(out_dir / "scores.npz", lambda f: np.savez_compressed(f, **arrays))

    if plots:
        from . import plots as P

        result["plots"] = P.evaluation_plots(out_dir, result, arrays, recon_arrays)
        write_json(out_dir / "metrics.json", result)
    return result


def evaluate_run(
    run_dir: str | os.PathLike,
    background: str | os.PathLike | None = None,
    signals: Sequence[str | os.PathLike] | None = None,
    score: str | None = None,
    max_jets: int | None = None,
    batch_size: int | None = None,
    n_boot: int | None = None,
    device: str = "auto",
    plots: bool = True,
    progress: bool = True,
    recon_jets: int | None = None,
    workers: int | None = None,
) -> dict:
    """Load a run directory, read the test files with the run's preprocessing and evaluate it.

    ``background`` / ``signals`` default to the run config's ``evaluate.background`` / ``evaluate.signals``. A
    signal may be given as ``name=path`` to name it; otherwise the name comes from the jets or the file stem.
    """
    from ..train import load_run

    run_dir = Path(run_dir)
    model, config = load_run(run_dir, device=resolve_device(device))
    config = dict(config)
    ev = validate_evaluate_config(config.get("evaluate"))
    background = background or ev.get("background")
    if signals is None or len(signals) == 0:
        signals = ev.get("signals")
        if isinstance(signals, str):
            signals = [signals]
        elif isinstance(signals, Mapping):
            signals = [f"{k}={v}" for k, v in signals.items()]
    if not background or not signals:
        raise ValueError(
            f"evaluate {run_dir}: give --background FILE and at least one --signal FILE "
            "(or set evaluate.background / evaluate.signals in the run config)"
        )
    max_jets = max_jets if max_jets is not None else ev.get("max_jets")
    data_cfg = config.get("data") or {}
    bname, bpath = parse_sample_arg(str(background))
    bkg = load_sample(bpath, data_cfg, bname, max_jets)
    sigs = []
    for s in signals:
        name, path = parse_sample_arg(str(s))
        sigs.append(load_sample(path, data_cfg, name, max_jets))
    return evaluate_model(
        model,
        config,
        bkg,
        sigs,
        run_dir,
        primary=score or ev.get("score") or "default",
        n_boot=n_boot if n_boot is not None else ev.get("n_boot", 200),
        batch_size=batch_size or ev.get("batch_size") or 512,
        recon_jets=next(v for v in (recon_jets, ev.get("recon_jets"), 2000) if v is not None),
        plots=plots,
        progress=progress,
        workers=workers if workers is not None else ev.get("workers"),
    )


def resolve_workers(workers: int | None, model, n_jets: int) -> int:
    """Worker processes for scoring: ``workers`` when given (at least 1), 1 for a model not on the CPU;
    by default one per usable core for at least ``AUTO_WORKERS_MIN_JETS`` jets, else 1."""
    device, _ = _model_device_dtype(model)
    if device.type != "cpu":
        return 1
    if workers is None:
        from .parallel import default_workers

        return default_workers() if n_jets >= AUTO_WORKERS_MIN_JETS else 1
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers: expected a positive integer or None (auto), got {workers!r}")
    return workers


def resolve_device(device: str = "auto") -> str:
    """``"auto"`` -> ``"cuda"`` when available, else ``"cpu"``; anything else unchanged."""
    import torch

    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(device)
