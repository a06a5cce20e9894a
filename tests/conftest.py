from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
INSTANCES = ROOT / "instances"


@pytest.fixture
def instances_dir() -> Path:
    return INSTANCES


def tiny_instance(**overrides):
    """A small valid instance dict: two devices, one link, one request class."""
    data = {
        "name": "tiny",
        "models": [{"id": "tinyllama-1.1b", "weight_format": "q4_0"}],
        "devices": [
            {"id": "phone", "type": "snapdragon-8-gen3"},
            {"id": "edge", "type": "rtx-3060"},
        ],
        "links": [{"a": "phone", "b": "edge", "bandwidth_mbps": 200, "latency_ms": 5}],
        "workload": [{"id": "chat", "source": "phone", "prompt_tokens": 128, "output_tokens": 32}],
        "objective": "latency",
    }
    data.update(overrides)
    return data
