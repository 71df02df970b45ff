"""Fixtures of the evaluator tests.

The helpers live in ``eval_helpers`` (a unique module name), so test files import them without clashing with
the other directories' conftest modules.
"""

from eval_helpers import fake_prepare_jets, one_thread, samples, test_models  # noqa: F401  (pytest fixtures)
