"""The examples in the reading, writing and checking modules' docstrings run and say what they show."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["placement.safefiles", "placement.textfiles", "placement.values", "placement.errors", "placement.planio",
           "placement.plan", "placement.problem", "solvers.api"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0 or name == "solvers.api"
