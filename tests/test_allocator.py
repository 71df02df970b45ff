"""lgae.allocator: freed heap memory is reused (no page faults per repeated large temporary), opt-out by
environment; checked in fresh processes so the test process keeps its own allocator settings."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

_PROBE = r"""
import resource, sys
from lgae.allocator import tune_allocator
on = tune_allocator(None if sys.argv[1] == "env" else sys.argv[1] == "on")
import torch
x = torch.empty(0)
def step():
    a = torch.ones(8 * 2**20)  # 32 MiB temporaries, freed at once
    b = a * 2.0
    return float(b[-1])
for _ in range(10):  # the heap settles into its working layout
    step()
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step()
print(on, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / 20)
"""


def _probe(mode: str, env: dict | None = None) -> tuple[bool, float]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, mode],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **(env or {})},
    ).stdout.split()
    return out[0] == "True", float(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt (Linux)")
def test_tuned_allocator_reuses_memory_without_page_faults():
    on, faults_on = _probe("on")
    off, faults_off = _probe("off")
    assert on and not off
    # default glibc: each 32 MiB temporary is a fresh mmap, ~2 x 8192 pages touched per step
    assert faults_off > 4000
    assert faults_on < 0.05 * faults_off


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt (Linux)")
def test_environment_turns_it_off():
    assert _probe("env", {"LGAE_TUNE_MALLOC": "0"})[0] is False
    assert _probe("env", {"LGAE_TUNE_MALLOC": "1"})[0] is True
