"""Graph models of LLMs and networks, and the catalogs they are built from.

``models`` imports none of llmplace's other packages: an LLM graph, a device
spec or a topology can be read and used on its own.
"""

from models.devices import DeviceSpec, device_from_fields, device_ids, device_spec
from models.engines import Engine, EngineProfile, engine, engine_ids
from models.errors import CatalogError, ConfigError
from models.formats import KV_FORMATS, WEIGHT_FORMATS, NumberFormat, kv_format, weight_format
from models.quality import ModelScores, benchmark_ids, model_scores
from models.llm import LayerNode, LLMArchitecture, LLMGraph, load_model, model_ids, parse_config
from models.topology import DeviceProfile, Link, Node, Topology
from models.workloads import WorkloadProfile, workload_ids, workload_profile

__all__ = [
    "CatalogError", "ConfigError",
    "NumberFormat", "WEIGHT_FORMATS", "KV_FORMATS", "weight_format", "kv_format",
    "LLMArchitecture", "LayerNode", "LLMGraph", "load_model", "model_ids", "parse_config",
    "DeviceSpec", "device_spec", "device_ids", "device_from_fields",
    "Engine", "EngineProfile", "engine", "engine_ids",
    "WorkloadProfile", "workload_profile", "workload_ids",
    "DeviceProfile", "Node", "Link", "Topology",
    "ModelScores", "model_scores", "benchmark_ids",
]
