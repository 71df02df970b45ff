"""Fixtures of the evaluator tests; the helpers live in ``eval_helpers`` (a unique module name, so test files can
import them without clashing with the other directories' conftest modules)."""

from eval_helpers import fake_prepare_jets, one_thread, samples, test_models  # noqa: F401  (pytest fixtures)
