"""Where the catalog data files live, and a cached reader for them."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

_ROOT = Path(__file__).resolve().parent / "catalog"


def catalog_dir(sub: str = "") -> Path:
    """The catalog folder (or one of its sub-folders)."""
    return _ROOT / sub if sub else _ROOT


@cache
def read_yaml(name: str) -> Any:
    """Parse ``catalog/<name>`` once per process."""
    with (_ROOT / name).open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)
