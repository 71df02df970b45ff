"""Small helpers shared by every layer to validate user-supplied configuration."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping


class ConfigError(ValueError):
    """A configuration is invalid (unknown or missing key, wrong type); the message says where."""


def closest(key: str, valid: Iterable[str]) -> str | None:
    """Return the valid key closest to ``key`` (for "did you mean" messages), or None."""
    match = difflib.get_close_matches(str(key), list(valid), n=1, cutoff=0.0)
    return match[0] if match else None


def check_keys(given: Mapping, valid: Iterable[str], where: str, required: Iterable[str] = ()) -> None:
    """Raise :class:`ConfigError` for unknown keys (naming the closest valid one) or missing required keys.

    Parameters
    ----------
    given : mapping
        The user's keys.
    valid : iterable of str
        Allowed keys.
    where : str
        Section name for the message, e.g. ``"model (gnnae-pl)"`` or ``"data"``.
    required : iterable of str
        Keys that must be present.
    """
    valid = list(valid)
    for key in given:
        if key not in valid:
            hint = closest(key, valid)
            raise ConfigError(
                f"unknown key {key!r} in section '{where}'"
                + (f"; did you mean {hint!r}?" if hint else "")
                + f" (valid keys: {', '.join(sorted(valid))})"
            )
    missing = [k for k in required if k not in given or given[k] is None]
    if missing:
        raise ConfigError(f"missing required key(s) {', '.join(map(repr, missing))} in section '{where}'")
