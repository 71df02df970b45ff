"""Shared pytest fixtures. Keep this minimal: every test directory inherits it."""

import importlib.util
import random
from pathlib import Path

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _seed_rngs():
    """Seed the Python, NumPy and torch global RNGs before every test (each test reproducible on its own)."""
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield


@pytest.fixture
def one_thread():
    """Run a test with one intra-op thread (opt-in): tests of many tiny tensor ops only lose time to
    threading, a lot on a busy machine. Use ``pytestmark = pytest.mark.usefixtures("one_thread")``.
    """
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def generated_jets(tmp_path_factory):
    """Small real Pythia 8 + FastJet samples shared by the integration tests: {process: path}.

    400 QCD jets and 150 top/W/Z jets (MPI off, one worker): a few seconds of generation on one core.
    """
    from lgae.data.pythia import generate_jets

    root = tmp_path_factory.mktemp("generated")
    sizes = {"qcd": 400, "top": 150, "w": 150, "z": 150}
    return {
        proc: generate_jets(proc, n, seed=11 + i, out=root / f"{proc}.root", workers=1, progress=False)
        for i, (proc, n) in enumerate(sizes.items())
    }


@pytest.fixture(scope="session")
def load_script():
    """``load_script("bench")``: the module ``scripts/bench.py`` (scripts are not a package)."""

    def load(name: str):
        path = Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(f"lgae_script_{name}", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod

    return load
