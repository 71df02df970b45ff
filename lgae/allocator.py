"""Keep freed heap memory in the process (glibc), so that PyTorch's CPU temporaries stop costing page faults.

PyTorch's CPU allocator takes every tensor from ``malloc``. glibc serves blocks above its mmap threshold
(128 KiB, adapting up to 32 MiB) with a fresh ``mmap`` and returns them with ``munmap`` on free, and trims
the heap top beyond its trim threshold: every training or scoring step then touches megabytes of new pages
(an LGAE score of 256 jets makes ~10,000 minor page faults; on a virtual machine each costs microseconds).
:func:`tune_allocator` serves all blocks from the heap and never trims it, the lightweight equivalent of
the jemalloc/tcmalloc advice in PyTorch's CPU performance guide: the process keeps its peak heap (about its
peak resident memory, which it reaches anyway) and reuses it.

The ``lgae`` command line and ``scripts/bench.py`` call it at start-up; library users can call it once in
their own scripts. ``LGAE_TUNE_MALLOC=0`` in the environment turns it off.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

__all__ = ["tune_allocator"]

# mallopt parameters (glibc <malloc.h>)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4

_STATE: dict = {}


def tune_allocator(enable: bool | None = None) -> bool:
    """Make glibc ``malloc`` keep and reuse freed memory (no per-block ``mmap``, no heap trimming).

    Parameters
    ----------
    enable : bool, optional
        ``False`` does nothing. Default: on unless the environment sets ``LGAE_TUNE_MALLOC=0``.

    Returns
    -------
    bool
        Whether the settings are in force (False on non-glibc systems, where this is a no-op).
    """
    if enable is None:
        enable = os.environ.get("LGAE_TUNE_MALLOC", "1").strip().lower() not in ("0", "false", "no", "off")
    if not enable:
        return _STATE.get("on", False)
    if "on" in _STATE:
        return _STATE["on"]
    ok = False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
        mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
        # mallopt returns 1 on success; both settings or none
        ok = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl without mallopt)
        ok = False
    _STATE["on"] = ok
    return ok
