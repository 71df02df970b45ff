"""The one trainer every lgae model uses.

:class:`Trainer` minimises ``model.loss(*batch)`` over in-memory tensors with Adam (or AdamW/SGD), a per-epoch
LR schedule, early stopping on the validation loss (the mean of ``model.loss_per_jet`` over the validation
set) and crash-safe checkpoints. A run interrupted after any epoch and resumed from ``checkpoints/last.pt``
ends with the same weights as an uninterrupted run: the data order of an epoch is a function of ``(seed,
epoch)`` only, and the model, optimiser, schedule and every RNG state (torch, NumPy, Python) are restored.

Run directory written (``run_dir``)::

    config.yaml            the resolved config (what rebuilds the model)
    checkpoints/best.pt    model at the epoch with the lowest validation loss
    checkpoints/last.pt    everything needed to resume (model, optimiser, schedule, RNG states, history)
    metrics.csv            epoch, train_loss, val_loss, lr, epoch_time_s, jets_per_s
    metrics_epochs.json    the same rows as a JSON list (plus ``best``)
    run.json               summary: versions, model size, seed, timing, best epoch and loss, early stop

Distributed data parallel (``torchrun`` / ``lgae train --nproc N``, see :mod:`lgae.train.distributed`): when a
process group is initialised the trainer wraps the model in ``DistributedDataParallel``; every rank takes
the strided slice ``batch[rank::world]`` of the same global batches (``batch_size`` jets in all), the loss is
scaled so that DDP's gradient average is the global batch's gradient, validation is sharded and summed with
``all_reduce``, and only rank 0 writes the run directory and shows progress.

Streaming: ``train_data`` may be an :class:`torch.utils.data.IterableDataset` that yields ``(p4, mask)`` (or
``(x,)``) *batches* (e.g. :class:`lgae.data.stream.StreamingJets`, already split into per-rank shards); its
``set_epoch(epoch)`` is called before each epoch. In a distributed run the ranks' shards may hold different
numbers of batches: DDP's ``join(throw_on_early_termination=True)`` ends the epoch on every rank as soon as
one rank runs out, so all ranks take the same optimiser steps.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor, nn

from .._validate import ConfigError
from . import distributed as ddp_utils
from .checkpoint import (
    atomic_write_text,
    get_rng_state,
    load_checkpoint,
    save_checkpoint,
    seed_everything,
    set_rng_state,
)
from .config import TrainerConfig

__all__ = ["Trainer", "TrainingError", "LRSchedule", "as_model_inputs", "resolve_device", "METRICS_COLUMNS"]

log = logging.getLogger("lgae.train")

#: columns of ``metrics.csv``
METRICS_COLUMNS = ("epoch", "train_loss", "val_loss", "lr", "epoch_time_s", "jets_per_s")
#: trainer keys that may change between a crash and its resume (they do not change the weights)
_RESUME_FREE_KEYS = (
    "epochs",
    "progress",
    "out",
    "device",
    "num_threads",
    "checkpoint_every",
    "eval_batch_size",
)
#: multiplier that makes the per-epoch permutation seed a function of (seed, epoch) only
_EPOCH_SEED_STRIDE = 1_000_003


class _LossModule(nn.Module):
    """``forward(*batch) = model.loss(*batch)``: what DDP wraps, so that its hooks see every training step."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, *batch):
        return self.model.loss(*batch)


def _is_stream(data: Any) -> bool:
    """An iterable dataset of batches (streamed), as opposed to in-memory tensors."""
    return isinstance(data, torch.utils.data.IterableDataset)


class TrainingError(RuntimeError):
    """Training cannot go on (non-finite loss); the message names the epoch and the last good checkpoint."""


def resolve_device(device: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; ``"cuda"`` without a GPU raises :class:`ConfigError`."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"trainer.device={device!r} but CUDA is not available (use 'auto' or 'cpu')")
    return dev


def as_model_inputs(data: Any) -> tuple[Tensor, ...]:
    """A dataset as the positional inputs of ``model(...)``: ``(p4, mask)`` for jets, ``(x,)`` for features.

    Accepts a tensor (features), a tuple/list of tensors or arrays, a mapping with ``p4``/``mask`` or ``x``, a
    :class:`torch.utils.data.TensorDataset`, or an object with ``p4``/``mask`` (e.g. :class:`lgae.data.Jets`)
    or ``x`` attributes. Labels, when present, are not model inputs and are dropped.
    """

    def t(v):
        return v if isinstance(v, Tensor) else torch.as_tensor(v)

    if isinstance(data, Tensor):
        return (data,)
    if hasattr(data, "tensors") and isinstance(data.tensors, tuple):  # TensorDataset
        data = data.tensors
    if isinstance(data, Mapping):
        if "p4" in data:
            return (t(data["p4"]), t(data["mask"])) if data.get("mask") is not None else (t(data["p4"]),)
        if "x" in data:
            return (t(data["x"]),)
        raise TypeError(f"dataset mapping needs 'p4' (and 'mask') or 'x'; got keys {sorted(data)}")
    if isinstance(data, (tuple, list)):
        if not 1 <= len(data) <= 2:
            raise TypeError(f"expected (x,) or (p4, mask) tensors, got a sequence of {len(data)}")
        return tuple(t(v) for v in data)
    if getattr(data, "p4", None) is not None:
        mask = getattr(data, "mask", None)
        return (t(data.p4), t(mask)) if mask is not None else (t(data.p4),)
    if getattr(data, "x", None) is not None:
        return (t(data.x),)
    raise TypeError(f"cannot use a {type(data).__name__} as a dataset (expected tensors, (p4, mask) or x)")


class LRSchedule:
    """Per-epoch learning rate: linear warm-up, then ``none`` / ``cosine`` / ``step`` / ``plateau``.

    Its state is a dict of plain numbers (stored in checkpoints).
    """

    def __init__(self, cfg: TrainerConfig):
        self.kind = cfg.lr_schedule
        self.params = dict(cfg.lr_schedule_params)
        self.base = cfg.lr
        self.warmup = cfg.warmup_epochs
        self.epochs = cfg.epochs
        self.scale = 1.0  # plateau: product of the reductions so far
        self.best = math.inf
        self.bad = 0

    def lr(self, epoch: int) -> float:
        """Learning rate for 0-based ``epoch``."""
        if epoch < self.warmup:
            return self.base * (epoch + 1) / (self.warmup + 1)
        t = epoch - self.warmup
        p = self.params
        if self.kind == "cosine":
            T = max(1, self.epochs - self.warmup)
            return p["eta_min"] + (self.base - p["eta_min"]) * 0.5 * (1 + math.cos(math.pi * min(t, T) / T))
        if self.kind == "step":
            return self.base * p["gamma"] ** (t // p["step_size"])
        if self.kind == "plateau":
            return max(self.base * self.scale, p["min_lr"])
        return self.base

    def step(self, epoch: int, val_loss: float) -> None:
        """Update after 0-based ``epoch`` with its validation loss (only ``plateau`` uses it)."""
        if self.kind != "plateau" or epoch < self.warmup:
            return
        # relative improvement threshold, as torch's ReduceLROnPlateau(threshold_mode="rel") for positive
        # losses
        bar = self.best - abs(self.best) * self.params["threshold"] if math.isfinite(self.best) else math.inf
        if val_loss < bar:
            self.best, self.bad = val_loss, 0
        else:
            self.bad += 1
            if self.bad > self.params["patience"]:
                self.scale *= self.params["factor"]
                self.bad = 0

    def state_dict(self) -> dict:
        return {"scale": self.scale, "best": self.best, "bad": self.bad}

    def load_state_dict(self, state: Mapping) -> None:
        self.scale, self.best, self.bad = float(state["scale"]), float(state["best"]), int(state["bad"])


def _build_optimizer(model: nn.Module, cfg: TrainerConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters")
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.betas[0], weight_decay=cfg.weight_decay)


def _config_diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Human-readable differences between two nested configs."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            key = f"{prefix}.{k}" if prefix else str(k)
            if k not in a:
                out.append(f"{key}: (absent) != {b[k]!r}")
            elif k not in b:
                out.append(f"{key}: {a[k]!r} != (absent)")
            else:
                out.extend(_config_diff(a[k], b[k], key))
        return out
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and list(a) == list(b):
        return []
    return [] if a == b else [f"{prefix}: {a!r} != {b!r}"]


def _resume_relevant(config: Mapping) -> dict:
    cfg = {k: v for k, v in config.items() if k not in ("evaluate", "name")}
    if "trainer" in cfg:
        cfg["trainer"] = {k: v for k, v in cfg["trainer"].items() if k not in _RESUME_FREE_KEYS}
    return cfg


class TimeBudget:
    """Trainer callback: request a stop when the next epoch would take the training past ``seconds``.

    The next epoch is assumed to last as long as the last one; the stop is clean (checkpoint, history).
    """

    def __init__(self, seconds: float | None):
        self.seconds = seconds

    def __call__(self, epoch: int, trainer: Trainer) -> None:
        if not self.seconds:
            return
        last = (trainer.history[-1].get("epoch_time_s") if trainer.history else 0.0) or 0.0
        if trainer.train_time_s + last > self.seconds:
            trainer.stop_requested = True


class Trainer:
    """Train one model on in-memory tensors.

    Parameters
    ----------
    model : JetAutoencoder
        Any registered model (``model.loss(*batch)`` is minimised, ``model.loss_per_jet`` gives the validation
        loss).
    train_data, val_data
        ``(p4, mask)`` for jet models or ``(x,)`` for feature models (anything :func:`as_model_inputs`
        accepts).
    config : TrainerConfig or mapping, optional
        The ``trainer:`` section (defaults for missing keys).
    run_dir : str or Path
        Where checkpoints, metrics and the resolved config go.
    callbacks : iterable of callables ``fn(epoch, trainer)``
        Called after each epoch (1-based ``epoch``), once its checkpoints and metrics are written. Raising
        aborts the run (the next :meth:`fit` resumes from there); setting ``trainer.stop_requested = True``
        ends it cleanly.
    run_config : mapping, optional
        The full resolved run config saved as ``config.yaml`` (``lgae.train.train`` passes it); by default
        ``{"model": {"name": model.name}, "trainer": ...}``, which rebuilds only models without required keys.
    resume : bool
        Continue from ``run_dir/checkpoints/last.pt`` when it exists (its config must match, apart from keys
        such as ``epochs`` or ``device`` that do not change the result); False starts afresh and removes old
        checkpoints.
    """

    def __init__(
        self,
        model: nn.Module,
        train_data: Any,
        val_data: Any,
        config: TrainerConfig | Mapping | None = None,
        run_dir: str | Path = "runs/unnamed",
        *,
        callbacks: Iterable[Callable[[int, Trainer], Any]] = (),
        run_config: Mapping | None = None,
        resume: bool = True,
    ):
        self.cfg = config if isinstance(config, TrainerConfig) else TrainerConfig.from_dict(config)
        self.run_dir = Path(run_dir)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.callbacks = list(callbacks)
        if self.cfg.time_budget_s:
            self.callbacks.append(TimeBudget(self.cfg.time_budget_s))
        self.resume = resume
        #: this process's rank and the number of processes (``world == 1``: a single process)
        self.dist = ddp_utils.context()
        self.device = resolve_device(self.cfg.device)
        if self.dist.enabled and self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", self.dist.local_rank)
        if self.cfg.dtype == "auto":
            self.model = model.to(device=self.device)
        else:
            self.model = model.to(device=self.device, dtype=getattr(torch, self.cfg.dtype))
        #: dtype the floating-point inputs are cast to: the model's (first real floating) parameter dtype
        self.dtype = next(
            (p.dtype for p in self.model.parameters() if p.is_floating_point()), torch.get_default_dtype()
        )
        #: True when the training set is an iterable dataset of batches (streamed from files)
        self.streaming = _is_stream(train_data)
        self.train_data = train_data if self.streaming else self._prepare(train_data, "training")
        self.val_data = self._prepare(val_data, "validation")
        if not self.streaming and len(self.train_data) != len(self.val_data):
            raise ValueError("training and validation data have different structures")
        self.n_train = None if self.streaming else len(self.train_data[0])
        self.n_val = len(self.val_data[0])
        self._ddp: nn.Module | None = None
        self.optimizer = _build_optimizer(self.model, self.cfg)
        self.schedule = LRSchedule(self.cfg)
        if run_config is None:
            run_config = {
                "model": {"name": getattr(model, "name", type(model).__name__)},
                "trainer": self.cfg.to_dict(),
            }
        self.run_config = json.loads(json.dumps(dict(run_config)))  # plain, detached copy
        # progress state (what last.pt stores)
        self.epoch = 0  # epochs completed
        self.best_val = math.inf
        self.best_epoch: int | None = None
        self.stale = 0
        self.stopped_early = False
        self.stop_requested = False
        self.history: list[dict] = []
        self.train_time_s = 0.0
        self.resumed_from: int | None = None

    # -- data
    def _prepare(self, data: Any, what: str) -> tuple[Tensor, ...]:
        tensors = as_model_inputs(data)
        n = len(tensors[0])
        if n == 0:
            raise ValueError(f"the {what} set is empty")
        if any(len(t) != n for t in tensors):
            raise ValueError(f"the {what} tensors have different lengths: {[len(t) for t in tensors]}")
        return tuple(
            t.to(device=self.device, dtype=self.dtype) if t.is_floating_point() else t.to(self.device)
            for t in tensors
        )

    def _epoch_batches(self, epoch: int) -> list[Tensor]:
        """Index batches of 0-based ``epoch``: a permutation from a generator seeded by (seed, epoch) only."""
        gen = torch.Generator().manual_seed(self.cfg.seed * _EPOCH_SEED_STRIDE + epoch)
        perm = torch.randperm(self.n_train, generator=gen).to(self.device)
        bs = self.cfg.batch_size
        batches = list(perm.split(bs))
        if (
            len(batches) > 1 and len(batches[-1]) == 1
        ):  # a lone jet breaks batch statistics; it is used next epoch
            batches.pop()
        world = self.dist.world
        if world > 1 and batches and len(batches[-1]) < world:  # every rank needs at least one jet
            batches.pop()
        if self.cfg.max_steps_per_epoch is not None:
            batches = batches[: self.cfg.max_steps_per_epoch]
        return batches

    def local_batches(self, epoch: int) -> list[tuple[Tensor, int]]:
        """This rank's ``(indices, global batch size)`` for 0-based ``epoch``: the strided slice
        ``batch[rank::world]`` of every global batch of :meth:`_epoch_batches` (the whole batch in one
        process).
        """
        r, w = self.dist.rank, self.dist.world
        return [(ddp_utils.shard(b, r, w), len(b)) for b in self._epoch_batches(epoch)]

    # -- evaluation
    @torch.no_grad()
    def validation_loss(self) -> float:
        """Mean of ``model.loss_per_jet`` over the validation set (eval mode, batched)."""
        was_training = self.model.training
        self.model.eval()
        bs = self.cfg.eval_batch_size or max(self.cfg.batch_size, 1024)
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        # distributed: each rank scores the strided share [rank::world] and the sums are all-reduced
        r, w = self.dist.rank, self.dist.world
        idx = torch.arange(r, self.n_val, w, device=self.device) if w > 1 else None
        n_local = self.n_val if idx is None else len(idx)
        try:
            for start in range(0, n_local, bs):
                if idx is None:
                    batch = tuple(t[start : start + bs] for t in self.val_data)
                else:
                    batch = tuple(t[idx[start : start + bs]] for t in self.val_data)
                total += self.model.loss_per_jet(*batch).double().sum()
        finally:
            self.model.train(was_training)
        (total,) = ddp_utils.all_reduce_sum(total)
        return float(total) / self.n_val

    # -- checkpoints
    def _meta(self) -> dict:
        from .. import __version__

        return {
            "lgae_version": __version__,
            "torch_version": str(torch.__version__),
            "model": getattr(self.model, "name", type(self.model).__name__),
        }

    def _state(self) -> dict:
        return {
            "format": 1,
            "meta": self._meta(),
            "config": self.run_config,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "epoch": self.epoch,
            "best_val": self.best_val,
            "best_epoch": self.best_epoch,
            "stale": self.stale,
            "stopped_early": self.stopped_early,
            "train_time_s": self.train_time_s,
            "history": self.history,
            "rng": get_rng_state(),
        }

    def _save_best(self, val_loss: float) -> None:
        if not self.dist.is_main:
            return
        save_checkpoint(
            {
                "format": 1,
                "meta": self._meta(),
                "config": self.run_config,
                "model": self.model.state_dict(),
                "epoch": self.epoch,
                "val_loss": val_loss,
            },
            self.ckpt_dir / "best.pt",
        )

    def _restore(self, path: Path) -> None:
        state = load_checkpoint(path, map_location=self.device)
        diff = _config_diff(_resume_relevant(state["config"]), _resume_relevant(self.run_config))
        if diff:
            raise ConfigError(
                f"{self.run_dir} holds a run with a different config ({'; '.join(diff[:5])}"
                + (f"; and {len(diff) - 5} more" if len(diff) > 5 else "")
                + "): restart it (`lgae train --restart`, resume=False) or choose another run directory"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.epoch = int(state["epoch"])
        self.best_val = float(state["best_val"])
        self.best_epoch = state["best_epoch"]
        self.stale = int(state["stale"])
        self.stopped_early = bool(state["stopped_early"])
        self.train_time_s = float(state["train_time_s"])
        self.history = [dict(h) for h in state["history"]]
        set_rng_state(state["rng"])
        self.resumed_from = self.epoch

    # -- outputs
    def _save_last(self) -> None:
        if self.dist.is_main:
            save_checkpoint(self._state(), self.ckpt_dir / "last.pt")

    def _write_metrics(self) -> None:
        if not self.dist.is_main:
            return
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(METRICS_COLUMNS)
        for h in self.history:
            w.writerow([h[c] if isinstance(h[c], int) else repr(float(h[c])) for c in METRICS_COLUMNS])
        atomic_write_text(self.run_dir / "metrics.csv", buf.getvalue())
        atomic_write_text(self.run_dir / "metrics_epochs.json", json.dumps(self.history, indent=1) + "\n")

    def summary(self) -> dict:
        """The content of ``run.json``."""

        def optional(fn):
            try:
                v = fn()
            except (NotImplementedError, AttributeError, TypeError):
                return None
            return int(v) if v is not None else None

        seen = sum(h["train_jets"] for h in self.history)
        train_only = sum(h["train_time_s"] for h in self.history)
        last = self.history[-1] if self.history else {}
        return {
            **self._meta(),
            "n_params": int(getattr(self.model, "n_params", sum(p.numel() for p in self.model.parameters()))),
            "latent_dim": optional(getattr(self.model, "latent_dim", lambda: None)),
            "input_dim": optional(getattr(self.model, "input_dim", lambda: None)),
            "seed": self.cfg.seed,
            "device": str(self.device),
            "world_size": self.dist.world,
            "streamed": self.streaming,
            "dtype": str(self.dtype).replace("torch.", ""),
            "n_train": self.n_train,
            "n_val": self.n_val,
            "epochs_completed": self.epoch,
            "total_train_time_s": self.train_time_s,
            "mean_train_jets_per_s": seen / train_only if train_only > 0 else None,
            "best_epoch": self.best_epoch,
            "best_val_loss": self.best_val if math.isfinite(self.best_val) else None,
            "final_train_loss": last.get("train_loss"),
            "final_val_loss": last.get("val_loss"),
            "stopped_early": self.stopped_early,
            "resumed_from_epoch": self.resumed_from,
        }

    # -- the loop
    @contextlib.contextmanager
    def _runtime(self):
        """Thread count and determinism flags for the duration of :meth:`fit`, restored afterwards."""
        threads = torch.get_num_threads()
        det = torch.are_deterministic_algorithms_enabled()
        det_warn = torch.is_deterministic_algorithms_warn_only_enabled()
        cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
        try:
            if self.cfg.num_threads:
                torch.set_num_threads(self.cfg.num_threads)
            elif self.dist.enabled and self.device.type == "cpu":
                torch.set_num_threads(ddp_utils.threads_per_rank(self.dist.world))
            if self.cfg.deterministic:
                if self.device.type == "cuda":
                    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
                torch.use_deterministic_algorithms(True, warn_only=True)
                torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
            yield
        finally:
            torch.set_num_threads(threads)
            torch.use_deterministic_algorithms(det, warn_only=det_warn)
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn

    def _start(self) -> None:
        last = self.ckpt_dir / "last.pt"
        if self.resume and last.exists():
            self._restore(last)
            log.info("resuming %s after epoch %d", self.run_dir, self.epoch)
        else:
            if self.dist.is_main:
                for stale in ("last.pt", "best.pt"):
                    with contextlib.suppress(FileNotFoundError):
                        (self.ckpt_dir / stale).unlink()
            seed_everything(self.cfg.seed)
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.run_dir / "config.yaml", yaml.safe_dump(self.run_config, sort_keys=False))
        if self.dist.enabled:
            self._wrap_ddp()
            ddp_utils.barrier()

    def _wrap_ddp(self) -> None:
        """Wrap ``model.loss`` in DistributedDataParallel (after a resume, so every rank starts equal)."""
        import warnings

        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        # static_graph: the same parameters take part in every step; DDP then also copes with parameters the
        # loss never uses (e.g. the LGAE's last decoder level) without an extra graph traversal per step
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            self._ddp = DistributedDataParallel(_LossModule(self.model), device_ids=ids, static_graph=True)

    def fit(self) -> dict:
        """Train until ``epochs``, early stopping or a callback's stop request; returns :meth:`summary`.

        Raises
        ------
        TrainingError
            When the training or validation loss of an epoch is not finite; the checkpoints of the last good
            epoch are kept.
        """
        cfg = self.cfg
        with self._runtime():
            self._start()
            done = self.stopped_early or self.epoch >= cfg.epochs
            self.model.train()
            bar = _progress(self._bar_cfg(), total=cfg.epochs, initial=self.epoch, desc="train")
            try:
                while not done:
                    self._run_epoch(bar)
                    finished = self.stopped_early or self.epoch >= cfg.epochs
                    saved = finished or self.epoch % cfg.checkpoint_every == 0
                    if saved:  # before the callbacks, so that one raising leaves this epoch resumable
                        self._save_last()
                    self._write_metrics()
                    for fn in self.callbacks:
                        fn(self.epoch, self)
                    if self.dist.enabled:  # a stop requested on any rank stops every rank
                        (flag,) = ddp_utils.all_reduce_sum(torch.tensor(float(self.stop_requested)))
                        self.stop_requested = bool(flag > 0)
                    if self.stop_requested and not saved:
                        self._save_last()
                    done = finished or self.stop_requested
            finally:
                bar.close()
            summary = self.summary()
            if self.dist.is_main:
                atomic_write_text(self.run_dir / "run.json", json.dumps(summary, indent=2) + "\n")
            ddp_utils.barrier()  # nobody reads the run directory before rank 0 has finished writing it
        return summary

    def _step(self, batch: tuple, scale: float | None = None) -> Tensor:
        """One optimiser step on ``batch``; returns the (unscaled) batch loss."""
        loss = self._ddp(*batch) if self._ddp is not None else self.model.loss(*batch)
        self.optimizer.zero_grad(set_to_none=True)
        (loss if scale is None else loss * scale).backward()
        if self.cfg.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.optimizer.step()
        return loss.detach()

    def _tensor_epoch(self, epoch: int, total: Tensor) -> tuple[Tensor, int]:
        seen = 0
        world = self.dist.world
        bar = _progress(
            self._bar_cfg(), iterable=self.local_batches(epoch), leave=False, desc=f"epoch {epoch + 1}"
        )
        for idx, n_global in bar:
            batch = tuple(t[idx] for t in self.train_data)
            # DDP averages the ranks' gradients: scaling by world * n_local / n_global makes that average the
            # gradient of the mean loss over the whole global batch, whatever the slices' sizes
            scale = world * len(idx) / n_global if world > 1 else None
            loss = self._step(batch, scale)
            total += loss.double() * len(idx)
            seen += len(idx)
        return total, seen

    def _stream_epoch(self, epoch: int, total: Tensor) -> tuple[Tensor, int]:
        data = self.train_data
        if hasattr(data, "set_epoch"):
            data.set_epoch(epoch)
        seen, steps = 0, 0
        cap = self.cfg.max_steps_per_epoch
        try:
            with ddp_utils.maybe_join(self._ddp, self._ddp is not None):
                for raw in _progress(self._bar_cfg(), iterable=data, leave=False, desc=f"epoch {epoch + 1}"):
                    if cap is not None and steps >= cap:
                        break
                    batch = self._prepare(raw, "streamed training")
                    loss = self._step(batch)
                    n = len(batch[0])
                    total += loss.double() * n
                    seen += n
                    steps += 1
        except RuntimeError as err:
            if "exhausted" not in str(err):  # DDP join: another rank ran out of batches; all ranks stop here
                raise
        return total, seen

    def _bar_cfg(self) -> TrainerConfig:
        """The config for progress bars: off on every rank but 0."""
        if self.dist.is_main:
            return self.cfg
        import dataclasses

        return dataclasses.replace(self.cfg, progress=False)

    def _run_epoch(self, bar) -> None:
        cfg, epoch = self.cfg, self.epoch  # 0-based index of the epoch being run
        lr = self.schedule.lr(epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        if self.dist.enabled:  # distinct noise per rank, and a resumed run repeats an uninterrupted one
            seed_everything(cfg.seed * _EPOCH_SEED_STRIDE + epoch * 7919 + self.dist.rank)
        t0 = time.perf_counter()
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        self.model.train()
        if self.streaming:
            total, seen = self._stream_epoch(epoch, total)
        else:
            total, seen = self._tensor_epoch(epoch, total)
        total, seen_all = ddp_utils.all_reduce_sum(total, torch.tensor(float(seen), dtype=torch.float64))
        seen = int(seen_all)
        train_loss = float(total) / max(seen, 1)
        train_time = time.perf_counter() - t0
        good = self.ckpt_dir / "last.pt"
        if seen == 0:
            why = (
                "a streamed shard was empty: fewer units than ranks and workers?"
                if self.streaming
                else f"{self.n_train} jets, batch_size {cfg.batch_size}, {self.dist.world} rank(s)"
            )
            raise TrainingError(f"epoch {epoch + 1} had no training jets ({why})")
        if not math.isfinite(train_loss):
            raise TrainingError(
                f"non-finite training loss ({train_loss}) in epoch {epoch + 1}; stopped. "
                f"The last good checkpoint is {good if good.exists() else '(none yet)'}; "
                "try a lower trainer.lr or trainer.grad_clip"
            )
        val_loss = self.validation_loss()
        if not math.isfinite(val_loss):
            raise TrainingError(
                f"non-finite validation loss ({val_loss}) after epoch {epoch + 1}; stopped. "
                f"The last good checkpoint is {good if good.exists() else '(none yet)'}"
            )
        self.schedule.step(epoch, val_loss)
        self.epoch = epoch + 1
        improved = val_loss < self.best_val
        if val_loss < self.best_val - cfg.min_delta:
            self.stale = 0
        else:
            self.stale += 1
        if improved:
            self.best_val, self.best_epoch = val_loss, self.epoch
            self._save_best(val_loss)
        epoch_time = time.perf_counter() - t0
        self.train_time_s += epoch_time  # whole epochs (training steps + validation), summed over resumes
        row = {
            "epoch": self.epoch,
            "train_loss": train_loss,
            "val_loss": val_loss,
            "lr": lr,
            "epoch_time_s": epoch_time,
            "jets_per_s": seen / train_time if train_time > 0 else 0.0,
            "train_time_s": train_time,
            "train_jets": seen,
            "best": improved,
        }
        self.history.append(row)
        if cfg.patience and self.stale >= cfg.patience:
            self.stopped_early = True
        bar.update(1)
        bar.set_postfix(
            {"train": f"{train_loss:.4g}", "val": f"{val_loss:.4g}", "best": f"{self.best_val:.4g}"}
        )
        if bar.disable and cfg.progress and self.dist.is_main:
            log.info(
                "epoch %d/%d  train %.6g  val %.6g  lr %.3g  %.1fs  %.0f jets/s%s%s",
                self.epoch,
                cfg.epochs,
                train_loss,
                val_loss,
                lr,
                epoch_time,
                row["jets_per_s"],
                "  *best*" if improved else "",
                "  (early stop)" if self.stopped_early else "",
            )


def _progress(cfg: TrainerConfig, iterable: Sequence | None = None, **kwargs):
    """A tqdm bar, disabled unless ``progress`` is on and stderr is a terminal."""
    from tqdm.auto import tqdm

    disable = not cfg.progress or not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty())
    return tqdm(
        iterable, disable=disable, dynamic_ncols=True, unit="epoch" if iterable is None else "batch", **kwargs
    )
