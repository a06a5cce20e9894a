"""The four published Helix clusters: each published placement, evaluated with no routes, reproduces
its published max-flow; an independent networkx max-flow over the instance's own numbers agrees."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import pytest

from placement import Plan, Shard, evaluate, load_instance, load_plan
from placement.costs import ACTIVATION_BYTES, TOKEN_ID_BYTES
from placement.costs.flows import route_shards

HELIX = Path(__file__).resolve().parents[1] / "instances" / "helix"
# Published MILP objectives (Helix, ASPLOS'25, artifact at 148b733). single24's is 1289.56 from unrounded
# capacities; the extracted tables are rounded to 0.01 tokens/s and its max-flow sums two of them.
PUBLISHED = {"single24": 1289.56, "geo3region24": 1212.18, "hetero42": 4137.55, "quality10": 286.59}


@pytest.fixture(scope="module", params=sorted(PUBLISHED))
def cluster(request):
    name = request.param
    return name, load_instance(HELIX / f"{name}.yaml"), load_plan(HELIX / f"{name}.published.json")


def test_published_placement_reproduces_its_max_flow(cluster):
    name, problem, plan = cluster
    assert not plan.routes
    m = evaluate(problem, plan)
    assert m.routing == "max-flow" and m.feasible, m.violations
    assert m.throughput_tok_s == pytest.approx(PUBLISHED[name], abs=0.015)
    assert sum(r.rate_tok_s for r in m.routes) == pytest.approx(m.throughput_tok_s, rel=1e-12)
    assert sum(r.fraction for r in m.routes) == pytest.approx(1.0, rel=1e-9)


def _networkx_flow(problem, plan) -> float:
    """Helix's flow network built from the instance's own numbers, without llmplace's routing code."""
    topo = problem.topology
    model = problem.models[0]
    act = model.graph.arch.hidden_size * ACTIVATION_BYTES
    links = {frozenset((l.a, l.b)): l.bytes_per_s for l in topo.links}
    g = nx.DiGraph()
    for s in plan.shards:
        g.add_edge(f"{s.id}-in", f"{s.id}-out",
                   capacity=topo.node(s.device).profile_for(model.id).throughput_at(s.num_blocks))
        if s.layers[0] == 0:
            g.add_edge("source", f"{s.id}-in")
        if s.layers[1] == model.num_blocks:
            g.add_edge(f"{s.id}-out", "sink", capacity=links[frozenset((s.device, "coordinator"))] / TOKEN_ID_BYTES)
        for t in plan.shards:
            if s.layers[1] == t.layers[0]:
                g.add_edge(f"{s.id}-out", f"{t.id}-in", capacity=links[frozenset((s.device, t.device))] / act)
    return nx.maximum_flow_value(g, "source", "sink")


def test_networkx_cross_check(cluster):
    name, problem, plan = cluster
    routing = route_shards(problem, plan.shards)
    assert routing.method == "max-flow" and routing.rounding_error_tok_s < 1e-6
    assert routing.throughput_tok_s == pytest.approx(_networkx_flow(problem, plan), rel=1e-9, abs=1e-6)
    # The shared-capacity program finds the same flow.
    assert route_shards(problem, plan.shards, method="lp").throughput_tok_s == pytest.approx(
        routing.throughput_tok_s, rel=1e-7)


def test_three_region_links_bind():
    # One pipeline through the regions in order: r0 (n0-n3), r1 (n4-n13), r2 (n14-n23). Its devices could
    # carry 1392 tokens/s; the two cross-region hops, each over its pair's own slow link, carry less.
    problem = load_instance(HELIX / "geo3region24.yaml")
    topo = problem.topology
    layers = [10] * 4 + [2] * 20
    starts = [sum(layers[:i]) for i in range(24)]
    shards = tuple(Shard(f"s{i}", "llama-2-70b", f"n{i}", (a, a + k)) for i, (a, k) in enumerate(zip(starts, layers)))
    m = evaluate(problem, Plan(shards=shards))
    compute = min(topo.node(s.device).profile_for("llama-2-70b").throughput_at(s.num_blocks) for s in shards)
    act = problem.models[0].graph.arch.hidden_size * ACTIVATION_BYTES
    links = {frozenset((l.a, l.b)): l.bytes_per_s / act for l in topo.links}
    crossing = min(links[frozenset(("n3", "n4"))], links[frozenset(("n13", "n14"))])
    assert compute == pytest.approx(1392.63)
    assert m.throughput_tok_s == pytest.approx(crossing, rel=1e-9) and crossing < 1000
    for u, v in (("n3", "n4"), ("n13", "n14")):
        assert topo.path(u, v, act) == [u, v]  # no relay through a faster in-region neighbour


def test_the_committed_files_are_the_conversion_of_the_extraction(tmp_path):
    from instances.helix.convert import convert

    results = convert(HELIX / "helix_clusters.json", tmp_path)
    assert {name for name, *_ in results} == set(PUBLISHED)
    for path in sorted(tmp_path.iterdir()):
        assert path.read_bytes() == (HELIX / path.name).read_bytes(), f"{path.name} differs from its conversion"


def test_the_benchmark_clusters_read_the_shipped_extraction():
    # No path outside the repository and no copied tables to fall back on: the file shipped beside the
    # converted clusters is the one source of the capacity tables.
    import sys
    sys.path.insert(0, str(HELIX.parents[1] / "benchmarks"))
    import helix_like
    import throughput_pipelines

    assert helix_like.REFERENCE_PATH == HELIX / "helix_clusters.json"
    names = [name for name, _ in throughput_pipelines.instances()]
    assert names[:4] == [f"helix-{name}" for name in ("single24", "geo3region24", "hetero42", "quality10")]
    single24 = load_instance(HELIX / "single24.yaml")
    a100 = next(n for n in single24.topology.nodes if n.spec.id == "a100-sxm-40gb").profile_for("llama-2-70b")
    assert helix_like.TABLES_70B["A100"][0] == pytest.approx(a100.throughput_at(1))


@pytest.mark.parametrize("args, message", [
    (["--nodes", "A100=2", "--regions", "0"], "error: --regions: expected a whole number from 1"),
    (["--nodes", "A100=2", "--regions", "3"], "error: --regions: expected a whole number from 1"),
    (["--nodes", "A100=2", "--regions", "x"], "error: argument --regions: invalid int value: 'x'"),
    (["--nodes", "A100=0"], "error: --nodes: A100: expected a whole number of machines >= 1, got 0"),
    (["--nodes", "A100=2,A100=1"], "error: --nodes: gives A100 twice"),
    (["--nodes", "H100=2"], "error: --nodes: unknown machine type(s) 'H100'"),
    (["--nodes", "A100"], "error: --nodes: expected TYPE=COUNT, got 'A100'"),
    (["--nodes", "A100=2", "--model", "no-such-model", "--profiles", "analytic"], "error: --model: unknown model"),
])
def test_the_generator_refuses_bad_arguments_in_one_line(args, message, tmp_path, capsys):
    from instances.helix.generate import main
    out = tmp_path / "cluster.yaml"
    try:
        code = main([*args, "-o", str(out)])
    except SystemExit as exc:  # argparse's own checks exit
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(message) and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_the_generator_writes_only_a_regular_file(tmp_path, capsys):
    from instances.helix.generate import main
    assert main(["--nodes", "A100=1", "-o", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("error: --output: ")
    out = tmp_path / "cluster.yaml"
    assert main(["--nodes", "A100=1,T4=2", "--regions", "2", "-o", str(out)]) == 0
    assert len(load_instance(out).topology.nodes) == 4


def test_the_converter_refuses_bad_input_in_one_line_and_writes_nothing(tmp_path, capsys):
    from instances.helix.convert import main
    bad_json, wrong_shape = tmp_path / "bad.json", tmp_path / "shape.json"
    bad_json.write_text("{", encoding="utf-8")
    wrong_shape.write_text('{"clusters": [{"name": "helix_single24"}]}', encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    for args, message in (([str(tmp_path / "missing.json")], "error: REFERENCE: cannot read"),
                          ([str(bad_json)], "error: REFERENCE: " + str(bad_json) + ": not JSON"),
                          ([str(wrong_shape)], "error: REFERENCE: " + str(wrong_shape) + ": cluster helix_single24"),
                          ([str(HELIX / "helix_clusters.json"), "--out", str(tmp_path / "none")],
                           "error: --out: ")):
        assert main([*args, "--out", str(out)] if "--out" not in args else args) == 2
        err = capsys.readouterr().err
        assert err.startswith(message) and len(err.strip().splitlines()) == 1, err
    assert list(out.iterdir()) == []
