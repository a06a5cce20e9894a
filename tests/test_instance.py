"""Reading instances: the shipped files load; bad input is reported field by field."""

from __future__ import annotations

import pytest
import yaml

from conftest import INSTANCES, tiny_instance
from placement import InvalidInstanceError, load_instance, parse_instance


@pytest.mark.parametrize("path", sorted(INSTANCES.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_instances_load(path):
    problem = load_instance(path)
    assert problem.models and problem.workload and len(problem.sha256) == 64


def test_four_architectures_are_shipped():
    names = {p.stem for p in INSTANCES.glob("*.yaml")}
    assert {"single-edge", "device-edge-cloud", "peer-edge", "hybrid"} <= names


def test_every_problem_is_reported_at_once():
    data = tiny_instance(
        devices=[{"id": "phone", "type": "snapdragon-8-gen3x"}, {"id": "edge", "type": "rtx-3060", "memory_gb": -8},
                 {"id": "edge", "type": "rtx-3060"}],
        links=[{"a": "phone", "b": "cloud", "bandwidth_mbps": 100}],
        workload=[{"id": "chat", "source": "laptop", "prompt_tokens": 0, "output_tokens": 10}],
    )
    data["devices"][1]["memroy_gb"] = 4
    with pytest.raises(InvalidInstanceError) as err:
        parse_instance(data)
    lines = [str(i) for i in err.value.issues]
    expected = [
        "devices[0].type: unknown device type 'snapdragon-8-gen3x'",
        "devices[1].memory_gb: must be > 0, got -8",
        "devices[1].memroy_gb: unknown field (did you mean 'memory_gb'?)",
        "devices[2].id: duplicate device id 'edge'",
        "links[0].b: names no device of this instance ('cloud')",
        "workload[0].source: names no device of this instance ('laptop')",
        "workload[0].prompt_tokens: must be > 0, got 0",
    ]
    for want in expected:
        assert any(line.startswith(want) for line in lines), f"missing: {want}\ngot: {lines}"


def test_inline_device_without_catalog_type():
    data = tiny_instance(devices=[
        {"id": "phone", "type": "snapdragon-8-gen3"},
        {"id": "edge", "memory_gb": 16, "memory_bandwidth_gbs": 200, "compute": {"gpu": {"fp16": 20}},
         "power_w": {"idle": 5, "active": 40}, "device_class": "jetson", "tier": "edge"},
    ])
    problem = parse_instance(data)
    assert problem.topology.node("edge").spec.memory_gb == 16


def test_catalog_override_keeps_other_fields():
    data = tiny_instance()
    data["devices"][1]["memory_gb"] = 8
    node = parse_instance(data).topology.node("edge")
    assert node.spec.memory_gb == 8 and node.spec.memory_bandwidth_gbs == 360


def test_workload_profile_fills_lengths(tmp_path):
    data = tiny_instance(workload=[{"id": "code", "source": "phone", "profile": "humaneval"}])
    req = parse_instance(data).workload[0]
    assert req.prompt_tokens > 0 and req.output_tokens > 0 and req.profile == "humaneval"


def test_yaml_syntax_error_names_the_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nmodels: [\n  - id: a\n")
    with pytest.raises(InvalidInstanceError, match="invalid YAML at line"):
        load_instance(bad)


def test_instance_file_is_not_modified(tmp_path):
    path = tmp_path / "i.yaml"
    path.write_text(yaml.safe_dump(tiny_instance()))
    before = path.read_bytes()
    load_instance(path)
    assert path.read_bytes() == before


def test_export_fields_are_read_and_default_to_none():
    data = tiny_instance()
    data["models"][0].update(gguf="/models/tinyllama-q4_0.gguf", hf_repo="TinyLlama/TinyLlama-1.1B-Chat-v1.0")
    data["devices"][1].update(address="10.0.0.2", port=50052)
    data["devices"][0].update(address="fe80::1")
    problem = parse_instance(data)
    model = problem.models[0]
    assert (model.gguf, model.hf_repo) == ("/models/tinyllama-q4_0.gguf", "TinyLlama/TinyLlama-1.1B-Chat-v1.0")
    phone, edge = problem.topology.nodes
    assert (phone.address, phone.port, edge.address, edge.port) == ("fe80::1", None, "10.0.0.2", 50052)
    plain = parse_instance(tiny_instance())
    assert (plain.models[0].gguf, plain.models[0].hf_repo, plain.topology.nodes[0].address) == (None, None, None)
    # The catalog knows the repository each config was taken from.
    assert plain.models[0].graph.hf_repo == "TinyLlama/TinyLlama-1.1B-Chat-v1.0"
