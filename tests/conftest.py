"""Shared pytest fixtures. Keep this minimal: every test directory inherits it."""

import random

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
