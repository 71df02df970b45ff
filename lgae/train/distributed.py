"""Data-parallel training on PyTorch's own engine: ``torch.distributed`` + ``DistributedDataParallel``.

Launch with torchrun (or ``lgae train --nproc N``, which calls the same launcher)::

    torchrun --standalone --nproc_per_node 2 -m lgae train --config configs/gnnae_pl.yaml
    lgae train --nproc 2 --config configs/gnnae_pl.yaml

Each process (rank) reads ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` / ``MASTER_ADDR`` / ``MASTER_PORT`` from
the environment torchrun sets and joins a process group: ``gloo`` on CPU, ``nccl`` on GPUs (rank ``r`` uses
``cuda:LOCAL_RANK``). What the trainer does with it (see :class:`lgae.train.Trainer`):

* every rank holds the data; each epoch's permutation is a function of ``(seed, epoch)`` as in a single
  process, cut into the same *global* batches of ``trainer.batch_size`` jets, and rank ``r`` takes the
  strided slice ``batch[r::world]`` of each (disjoint across ranks, together the whole batch). The local
  loss is scaled by ``world * len(slice) / len(batch)``, so the gradient DDP averages is exactly the gradient
  of the global batch's mean loss: one epoch on N ranks gives the single-process result up to rounding;
* validation is sharded the same way and summed with ``all_reduce`` (metrics only); every rank then takes the
  same early-stopping and schedule decisions;
* rank 0 alone writes the run directory (config, checkpoints, metrics, ``run.json``) and shows progress; a
  resumed run reads ``checkpoints/last.pt`` on every rank;
* torch's RNG streams (dropout, VAE sampling) are re-seeded each epoch from ``(seed, epoch, rank)``, so ranks
  draw different noise and a resumed distributed run repeats an uninterrupted one;
* each rank uses ``cores / world`` threads unless ``trainer.num_threads`` says otherwise.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch

__all__ = [
    "DistContext",
    "all_reduce_sum",
    "available_cores",
    "context",
    "init_from_env",
    "launch",
    "shard",
    "threads_per_rank",
]


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: ``rank`` of ``world`` processes (``world == 1``: not distributed)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def context() -> DistContext:
    """The current process group's rank and size (``DistContext()`` when none is initialised)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    return DistContext()


def env_world_size() -> int:
    """``WORLD_SIZE`` from the environment (1 when unset): > 1 inside a torchrun-launched process."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def init_from_env(device: str = "auto", timeout_s: float = 1800.0) -> DistContext:
    """Join the process group torchrun describes in the environment (a no-op when ``WORLD_SIZE`` <= 1).

    The backend is ``nccl`` when this rank trains on CUDA, else ``gloo``; on CUDA rank ``r`` is pinned to
    ``cuda:LOCAL_RANK``. Returns the :class:`DistContext`.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return context()
    if env_world_size() <= 1:
        return DistContext()
    local = int(os.environ.get("LOCAL_RANK", 0))
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if cuda:
        torch.cuda.set_device(local)
    dist.init_process_group(backend="nccl" if cuda else "gloo", timeout=datetime.timedelta(seconds=timeout_s))
    return context()


def destroy() -> None:
    """Leave the process group (if any)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def available_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def threads_per_rank(world: int, local_world: int | None = None) -> int:
    """``cores / processes on this machine`` (at least 1): intra-op threads for one rank."""
    local = local_world or int(os.environ.get("LOCAL_WORLD_SIZE", world) or world)
    return max(1, available_cores() // max(1, local))


def shard(batch: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    """Rank ``rank``'s part of a global index batch: the strided slice ``batch[rank::world]``."""
    return batch[rank::world]


def all_reduce_sum(*values: torch.Tensor) -> list[torch.Tensor]:
    """Sum scalar tensors over all ranks (float64, returned on the CPU; identity outside a process group)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return list(values)
    # nccl reduces CUDA tensors only, gloo any: reduce on the backend's device, hand back CPU tensors
    dev = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
    flat = torch.stack(
        [v.detach().to(device=dev or v.device, dtype=torch.float64).reshape(()) for v in values]
    )
    flat = flat if dev is not None else flat.cpu()
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    return list(flat.cpu().unbind())


def barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def launch(nproc: int, argv: Sequence[str], *, module: str = "lgae", extra: Sequence[str] = ()) -> int:
    """Run ``python -m <module> <argv>`` in ``nproc`` processes with torch's elastic launcher (torchrun).

    Equivalent to ``torchrun --standalone --nproc_per_node NPROC -m lgae ARGV``. Returns 0 on success;
    torch's ``ChildFailedError`` (naming the failed rank and its error) propagates otherwise.
    """
    from torch.distributed.run import get_args_parser, run

    if nproc < 1:
        raise ValueError(f"--nproc must be >= 1, got {nproc}")
    args = get_args_parser().parse_args(
        ["--standalone", f"--nproc_per_node={int(nproc)}", *extra, "-m", module, *argv]
    )
    run(args)
    return 0


@contextlib.contextmanager
def maybe_join(ddp_model, enabled: bool):
    """``ddp_model.join(throw_on_early_termination=True)`` when ``enabled`` (uneven streamed shards)."""
    if not enabled:
        yield
        return
    with ddp_model.join(throw_on_early_termination=True):
        yield
