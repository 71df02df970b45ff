"""Fixtures for the group-core tests."""

import pytest
import torch

PAULI = torch.tensor([[[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]], dtype=torch.complex128)


@pytest.fixture(autouse=True)
def _tiny_ops(one_thread):
    """Every test here multiplies tiny matrices: run single-threaded."""
    yield


@pytest.fixture
def random_sl2c():
    """``f(n, scale, seed)``: ``exp(-i w.sigma/2)`` for random complex ``w``, ``|w| ~ scale`` (generic)."""

    def draw(n: int, scale: float, seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        w = scale * torch.complex(
            torch.randn(n, 3, generator=g, dtype=torch.float64),
            torch.randn(n, 3, generator=g, dtype=torch.float64),
        )
        return torch.linalg.matrix_exp(-0.5j * torch.einsum("...a,aij->...ij", w, PAULI))

    return draw
