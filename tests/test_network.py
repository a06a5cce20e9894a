"""Physical network resources: links shared by transfers between different device pairs, relays' NICs."""

from __future__ import annotations

import pytest

from placement import Kind, Plan, Route, Shard, cost_table, evaluate, parse_instance
from placement.costs import ACTIVATION_BYTES
from placement.evaluate import route_resource_seconds

MODEL = "tinyllama-1.1b"  # 22 blocks, hidden 2048: 4 KiB of activations per token


def _star(relay_nic_mbps: float | None = None, spoke_mbps: float = 10_000, shared_mbps: float = 10) -> dict:
    """a and c reach b only through the relay r; the link r-b is narrow."""
    relay = {"id": "r", "type": "raspberry-pi-5-8gb"}
    if relay_nic_mbps is not None:
        relay["nic_mbps"] = relay_nic_mbps
    return {
        "name": "star",
        "models": [{"id": MODEL, "weight_format": "q4_0"}],
        "devices": [{"id": "a", "type": "rtx-4090"}, {"id": "b", "type": "rtx-4090"}, {"id": "c", "type": "rtx-4090"},
                    relay],
        "links": [{"a": "a", "b": "r", "bandwidth_mbps": spoke_mbps, "latency_ms": 1},
                  {"a": "c", "b": "r", "bandwidth_mbps": spoke_mbps, "latency_ms": 1},
                  {"a": "r", "b": "b", "bandwidth_mbps": shared_mbps, "latency_ms": 1}],
        "workload": [{"id": "from-a", "source": "a", "prompt_tokens": 64, "output_tokens": 16},
                     {"id": "from-c", "source": "c", "prompt_tokens": 64, "output_tokens": 16}],
        "objective": "throughput",
    }


def _two_pipelines(routes: tuple[str, ...]) -> Plan:
    shards = (Shard("a0", MODEL, "a", (0, 11)), Shard("c0", MODEL, "c", (0, 11)), Shard("b1", MODEL, "b", (11, 22)))
    paths = {"from-a": ("a0", "b1"), "from-c": ("c0", "b1")}
    return Plan(shards=shards, routes=tuple(Route(r, paths[r]) for r in routes))


def test_two_device_pairs_share_one_physical_link():
    problem = parse_instance(_star())
    one = evaluate(problem, _two_pipelines(("from-a",)))
    both = evaluate(problem, _two_pipelines(("from-a", "from-c")))
    act_s = 2048 * ACTIVATION_BYTES / (10e6 / 8)  # one token's activations over r -> b
    use = route_resource_seconds(problem, _two_pipelines(("from-a", "from-c")))
    for route_use in use:
        assert route_use[("link", "r", "b")] == pytest.approx(act_s)
        busiest = max(route_use, key=route_use.get)
        assert busiest == ("link", "r", "b")
    # Alone, a class gets the link's whole capacity; together they share it: no more in total.
    assert one.throughput_tok_s == pytest.approx(1 / act_s, rel=1e-9)
    assert both.throughput_tok_s == pytest.approx(one.throughput_tok_s, rel=1e-9)


def test_hops_use_every_link_of_their_path_in_its_direction():
    problem = parse_instance(_star())
    (use,) = route_resource_seconds(problem, _two_pipelines(("from-a",)))
    assert ("link", "a", "r") in use and ("link", "r", "b") in use
    # The sampled token goes back b -> r -> a, the other direction of each full-duplex link.
    assert ("link", "b", "r") in use and ("link", "r", "a") in use
    assert use[("link", "a", "r")] == pytest.approx(2048 * ACTIVATION_BYTES / (10_000e6 / 8))


def test_a_relay_nic_is_charged_for_what_it_forwards():
    problem = parse_instance(_star(relay_nic_mbps=5, shared_mbps=10_000))
    plan = _two_pipelines(("from-a",))
    (use,) = route_resource_seconds(problem, plan)
    act_s = 2048 * ACTIVATION_BYTES / (5e6 / 8)
    # It receives and sends every token's activations a -> b, and the sampled token's loop and return b -> a.
    forwarded = act_s + 8 / (5e6 / 8)
    assert use[("nic_in", "r")] == pytest.approx(forwarded) and use[("nic_out", "r")] == pytest.approx(forwarded)
    assert max(use, key=use.get) in (("nic_in", "r"), ("nic_out", "r"))
    assert evaluate(problem, plan).throughput_tok_s == pytest.approx(1 / forwarded, rel=1e-9)
    # The NIC also caps the rate a single transfer sees on the links at the relay.
    t = cost_table(problem).transfers("from-a")
    a, b = problem.topology.index["a"], problem.topology.index["b"]
    assert t.hop_token_s[a, b] == pytest.approx(act_s)


def test_routes_with_rates_must_fit_every_resource():
    problem = parse_instance(_star())
    act_s = 2048 * ACTIVATION_BYTES / (10e6 / 8)
    capacity = 1 / act_s
    plan = _two_pipelines(("from-a", "from-c"))
    fits = plan.with_(routes=tuple(Route(r.request, r.path, rate_tok_s=0.4 * capacity) for r in plan.routes))
    m = evaluate(problem, fits)
    assert m.feasible and m.throughput_tok_s == pytest.approx(0.8 * capacity)
    over = plan.with_(routes=tuple(Route(r.request, r.path, rate_tok_s=0.6 * capacity) for r in plan.routes))
    m = evaluate(problem, over)
    (v,) = [v for v in m.violations if v.kind == Kind.CAPACITY]
    assert v.subject == "link r -> b" and v.value == pytest.approx(1.2)
    assert m.throughput_tok_s == pytest.approx(capacity)  # what the link lets through


def test_wireless_links_share_one_medium_both_ways():
    data = _star()
    data["links"][2] = {"a": "r", "b": "b", "channel_mhz": 1, "snr_db": 0, "latency_ms": 1}  # 1 Mbit/s, half duplex
    problem = parse_instance(data)
    assert ("link", "b", "r") not in problem.topology.resources
    (use,) = route_resource_seconds(problem, _two_pipelines(("from-a",)))
    # Activations r -> b and the sampled token b -> r occupy the same medium.
    assert use[("link", "r", "b")] == pytest.approx((2048 * ACTIVATION_BYTES + 4 + 4) / (1e6 / 8))
