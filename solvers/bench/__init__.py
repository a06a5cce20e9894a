"""The benchmark harness: suites of instance families run by every solver, one JSON row per run.

    from solvers.bench import run_bench
    summary = run_bench("smoke", "results.jsonl")          # or llmplace bench --suite smoke -o results.jsonl

:mod:`solvers.bench.suites` defines the suites, :mod:`instances.families` the
families they draw instances from, :mod:`solvers.bench.runner` runs them on an
executor of :mod:`solvers.bench.executors` and appends rows to a results file
(:mod:`solvers.bench.store`); :mod:`solvers.bench.report` turns rows into a
markdown report with figures. ``llmplace compare`` builds its rows with
:mod:`solvers.bench.rows` too.
"""

from solvers.bench.runner import BenchSummary, plan_suite, run_bench
from solvers.bench.suites import SUITES, Part, Suite, suite

__all__ = ["run_bench", "plan_suite", "BenchSummary", "SUITES", "Suite", "Part", "suite"]
