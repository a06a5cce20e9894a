"""Device, engine, format and workload catalogs: complete, sourced, sane."""

from __future__ import annotations

import pytest

from models import WEIGHT_FORMATS, device_ids, device_spec, engine_ids, workload_ids, workload_profile

REQUIRED_DEVICES = """a100-sxm-80gb a100-sxm-40gb a100-pcie-80gb h100-sxm-80gb h100-pcie-80gb l40s l4 a40 t4 v100
rtx-a6000 rtx-6000-ada rtx-3060 rtx-3070 rtx-3090 rtx-4080 rtx-4090 jetson-agx-orin-64gb jetson-agx-orin-32gb
jetson-orin-nx-16gb jetson-orin-nano-8gb raspberry-pi-5-8gb raspberry-pi-5-16gb apple-m1 apple-m1-max apple-m1-ultra
apple-m2-ultra apple-m3-max apple-m3-ultra apple-m4 snapdragon-8-gen3 snapdragon-8-elite snapdragon-8-elite-gen5
snapdragon-x-elite dgx-spark ryzen-ai-max-395 ryzen-ai-5-340 intel-n150 intel-i3-1315u intel-i9-13900k
h200-sxm-141gb rtx-5090 mi300x rx-7900-xtx apple-m2-pro apple-m2-max apple-m3-pro apple-m4-pro apple-m4-max
iphone-15-pro iphone-16-pro jetson-agx-thor snapdragon-x2-elite""".split()
REQUIRED_WORKLOADS = """mmlu hellaswag arc truthfulqa xsum gsm8k mathqa humaneval mbpp longbench-qa longbench-summ ruler
cnn-dailymail""".split()


def test_required_ids_present():
    assert set(REQUIRED_DEVICES) <= set(device_ids())
    assert set(REQUIRED_WORKLOADS) <= set(workload_ids())
    assert {"llama.cpp", "vllm", "tensorrt-llm", "lmdeploy", "mlc", "qnn"} <= set(engine_ids())
    assert {"fp32", "fp16", "bf16", "fp8", "int8", "q8_0", "q4_k_m", "q4_0", "q3_k_s", "w4a16"} <= set(WEIGHT_FORMATS)


@pytest.mark.parametrize("device_id", device_ids())
def test_device_numbers_are_sane_and_sourced(device_id):
    d = device_spec(device_id)
    assert 0 <= d.reserved_memory_gb < d.memory_gb
    assert d.memory_bandwidth_gbs > 0 and d.peak_tflops("fp16") > 0
    assert 0 <= d.power_idle_w <= d.power_active_w
    assert d.default_engine in engine_ids()
    for key in ("memory_gb", "memory_bandwidth_gbs", "compute", "power_w", "reserved_memory_gb"):
        assert d.source(key).strip(), f"{device_id}: no source for {key}"


def test_quantised_formats_are_smaller():
    bits = {k: f.bits_per_weight for k, f in WEIGHT_FORMATS.items()}
    assert bits["fp32"] > bits["fp16"] > bits["q8_0"] > bits["int8"] - 1 > bits["q4_k_m"] > bits["q4_0"] > bits["q3_k_s"]


@pytest.mark.parametrize("workload_id", workload_ids())
def test_workloads_have_lengths_and_sources(workload_id):
    w = workload_profile(workload_id)
    assert w.prompt_tokens > 0 and w.output_tokens > 0
    assert dict(w.sources).get("prompt_tokens") and dict(w.sources).get("output_tokens")


@pytest.mark.parametrize("device_id, engine_id", [("mi300x", "vllm"), ("rx-7900-xtx", "llama.cpp")])
def test_amd_gpus_use_explicit_uncalibrated_defaults(device_id, engine_id):
    # No profile is fitted on AMD hardware: the engine's defaults apply and predictions say so.
    from models import Node, weight_format
    from placement import predict
    from placement.costs.roofline import execution_rates
    spec = device_spec(device_id)
    rates = execution_rates(Node(spec.id, spec, engine=engine_id), weight_format("fp16"))
    assert not rates.profile.calibrated and rates.profile.source == "uncalibrated default"
    assert not predict("llama-3-8b", device_id, "fp16", engine=engine_id).calibrated


def test_unverified_numbers_are_marked():
    # A new device's figure that no datasheet read here gives says so in its source.
    for device_id in ("iphone-15-pro", "jetson-agx-thor", "snapdragon-x2-elite"):
        assert "unverified" in device_spec(device_id).source("compute")
