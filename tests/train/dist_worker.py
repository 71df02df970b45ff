"""One rank of the distributed-trainer tests (launched by test_train_distributed.py with torchrun's env vars).

Usage: ``python dist_worker.py SPEC.json``. SPEC holds ``out`` (where this rank writes ``rank<r>.json``),
``run_dir``, ``epochs``, ``resume_to``, ``batch_size`` and optionally ``stream`` ({"path", "run_dir",
"batch_size", "step_size"}). The rank trains the tiny float64 MLP autoencoder of train_helpers on the
shared synthetic jets, recording a fingerprint of every training jet it sees and every file it writes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

torch.set_num_threads(1)

from train_helpers import TEST_MODELS, make_jets  # noqa: E402

import lgae.train.trainer as trainer_mod  # noqa: E402
from lgae.models import build_model, registry  # noqa: E402
from lgae.train import distributed  # noqa: E402
from lgae.train.checkpoint import seed_everything  # noqa: E402

N_TRAIN, N_VAL, N_PARTICLES = 255, 64, 4


def data():
    """The same jets on every rank and in the single-process reference."""
    return make_jets(N_TRAIN, N_PARTICLES, seed=0), make_jets(N_VAL, N_PARTICLES, seed=1)


def fingerprint(p4: torch.Tensor) -> list[float]:
    return p4.double().sum((1, 2)).tolist()


def trainer_config(spec: dict) -> dict:
    return {
        "epochs": spec["epochs"],
        "batch_size": spec["batch_size"],
        "lr": 3e-3,
        "seed": 0,
        "progress": False,
        "device": "cpu",
        "dtype": "float64",
        "num_threads": 1,
        "patience": None,
    }


def build(seed: int = 0):
    for name, cls in TEST_MODELS.items():
        registry._REGISTRY[name] = cls
    seed_everything(seed)
    return build_model("test-mlp-ae", n_particles=N_PARTICLES, hidden=8)


def recording(model, seen: list):
    """Record the fingerprints of the jets each training step sees (model.loss is what DDP calls)."""
    original = model.loss

    def loss(p4, mask=None):
        seen.append(fingerprint(p4))
        return original(p4, mask)

    model.loss = loss
    return model


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    ctx = distributed.init_from_env("cpu")
    writes: list[str] = []
    real_save, real_text = trainer_mod.save_checkpoint, trainer_mod.atomic_write_text
    trainer_mod.save_checkpoint = lambda obj, path: (writes.append(str(path)), real_save(obj, path))[1]
    trainer_mod.atomic_write_text = lambda path, text: (writes.append(str(path)), real_text(path, text))[1]

    train, val = data()
    result = {"rank": ctx.rank, "world": ctx.world, "phases": []}
    # phase 1: `epochs` epochs; phase 2: a new trainer (fresh model) resumes the run dir to `resume_to` epochs
    for epochs in (spec["epochs"], spec["resume_to"]):
        seen: list = []
        writes.clear()
        model = recording(build(), seen)
        t = trainer_mod.Trainer(
            model, train, val, trainer_config({**spec, "epochs": epochs}), spec["run_dir"]
        )
        summary = t.fit()
        result["phases"].append(
            {"seen": seen, "writes": list(writes), "history": t.history, "summary": summary}
        )
    result["threads"] = torch.get_num_threads()
    if spec.get("stream"):
        from lgae.data.stream import StreamingJets

        st = spec["stream"]
        stream = StreamingJets(
            st["path"], N_PARTICLES, {"step_size": st["step_size"]}, batch_size=st["batch_size"], seed=0
        )
        steps: list = []
        model = recording(build(), steps)
        t = trainer_mod.Trainer(model, stream, val, trainer_config({**spec, "epochs": 2}), st["run_dir"])
        t.fit()
        result["stream_steps"] = len(steps)
        result["stream_units"] = len(stream.shard_units(ctx.rank, ctx.world))
        result["stream_history"] = t.history
    Path(spec["out"], f"rank{ctx.rank}.json").write_text(json.dumps(result))
    distributed.destroy()


if __name__ == "__main__":
    main()
