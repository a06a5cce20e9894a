"""Mixed-integer linear programs in one matrix form, solved by any of four backends.

A :class:`MILP` is

    minimise    c @ x + offset
    subject to  row_lo <= A @ x <= row_hi
                var_lo <= x <= var_hi,   x[j] integer where integer[j]

and :func:`solve_milp` hands it to a backend, imported only when used:

- ``highs``: HiGHS through :func:`scipy.optimize.milp`. The LP relaxation is
  solved first and returned when it is integral (then its value is the proof);
  otherwise branch and bound runs. scipy exposes no thread setting (and HiGHS
  fixes its thread pool at the first call in a process), so HiGHS runs on one
  thread.
- ``cbc``: CBC through PuLP. The solution status is PuLP's ``sol_status`` (its
  ``status`` says "Optimal" after a time-limited run); the bound is read from
  CBC's log.
- ``scip``: SCIP through OR-Tools' linear solver wrapper.
- ``cpsat``: OR-Tools CP-SAT, which takes integers only (see :func:`_cpsat`).

Every backend returns a :class:`MILPResult` whose ``bound`` is a proven lower
bound on the optimum of the model as given (``None`` when none is known).

Examples
--------
>>> import numpy as np, scipy.sparse as sp
>>> m = MILP(c=np.array([-1.0, -2.0]), A=sp.csr_matrix([[1.0, 1.0]]), row_lo=np.array([-np.inf]),
...          row_hi=np.array([1.0]), var_lo=np.zeros(2), var_hi=np.ones(2), integer=np.ones(2, bool))
>>> r = solve_milp(m, "highs", time_limit_s=5)
>>> r.status, r.x.tolist(), r.objective
('optimal', [0.0, 1.0], -2.0)
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import re
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

__all__ = ["MILP", "MILPResult", "RowBuilder", "solve_milp", "BACKENDS", "handover_seconds", "SCIP_MEMORY_MB"]

BACKENDS = ("highs", "cbc", "cpsat", "scip")
_FEAS_TOL = 1e-9  # primal feasibility asked of the float backends (rows are scaled to O(1))
# HiGHS's MIP re-solves the root LP without a warm start: measured 4.0 s against 0.57 s for the same
# relaxation solved alone (37,196 binaries), before the MIP checks its time limit for the first time.
_MIP_ROOT_FACTOR = 16.0
# Seconds per nonzero the adapters take to build a backend's model (see handover_seconds), rounded up.
_HANDOVER_S_PER_NONZERO = {"cbc": 25e-6, "scip": 8e-6, "cpsat": 8e-6, "highs": 1.2e-6}
_BUILD_CHECK_ROWS = 512  # rows built between two looks at the clock
_KILL_GRACE_S = 0.5  # how long past the deadline a backend run that ignores its own limit is left running
# SCIP's own memory limit (MB): it stops with its best solution and bound when it reaches it
# (unbounded, it took 4.8 GB on a 42-device throughput program).
SCIP_MEMORY_MB = 1536


@dataclass
class MILP:
    """``min c @ x + offset`` s.t. ``row_lo <= A @ x <= row_hi``, bounds and integrality.

    ``max_ones`` bounds how many integer variables are non-zero in any feasible
    solution (the CP-SAT adapter uses it to bound its rounding error).
    """

    c: np.ndarray
    A: sp.csr_matrix
    row_lo: np.ndarray
    row_hi: np.ndarray
    var_lo: np.ndarray
    var_hi: np.ndarray
    integer: np.ndarray
    offset: float = 0.0
    max_ones: int | None = None
    x0: np.ndarray | None = None  # a start the backend may begin from (every backend but highs takes it)

    @property
    def num_vars(self) -> int:
        return len(self.c)

    @property
    def num_rows(self) -> int:
        return self.A.shape[0]


class RowBuilder:
    """The rows of a program, one at a time, as the sparse matrix and row bounds of a :class:`MILP`.

    >>> rows = RowBuilder()
    >>> rows.row([0, 1], [1.0, 2.0], -np.inf, 4.0)
    >>> rows.pairs([(1, 1.0)], 1.0, np.inf)
    >>> A, lo, hi = rows.matrix(2)
    >>> A.toarray().tolist(), lo.tolist(), hi.tolist()
    ([[1.0, 2.0], [0.0, 1.0]], [-inf, 1.0], [4.0, inf])
    """

    def __init__(self) -> None:
        self.r: list[int] = []
        self.c: list[int] = []
        self.v: list[float] = []
        self.lo: list[float] = []
        self.hi: list[float] = []

    def row(self, cols, vals, lo: float, hi: float) -> None:
        """``lo <= sum(vals[k] * x[cols[k]]) <= hi``."""
        k = len(self.lo)
        self.r.extend([k] * len(cols))
        self.c.extend(int(j) for j in cols)
        self.v.extend(float(a) for a in vals)
        self.lo.append(lo)
        self.hi.append(hi)

    def pairs(self, entries, lo: float, hi: float) -> None:
        """The row of ``(column, coefficient)`` pairs ``entries``."""
        self.row([j for j, _ in entries], [a for _, a in entries], lo, hi)

    def matrix(self, n: int) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
        """The rows over ``n`` variables (repeated columns in a row add up), and their bounds."""
        A = sp.csr_matrix((self.v, (self.r, self.c)), shape=(len(self.lo), n))
        A.sum_duplicates()
        return A, np.array(self.lo), np.array(self.hi)


@dataclass
class MILPResult:
    """What a backend found.

    ``status``: ``optimal`` (proved within the gap asked), ``feasible`` (stopped
    by the time limit with a solution), ``infeasible`` (proved), ``no_solution``
    (stopped without one) or ``error``. ``objective`` is ``c @ x + offset``
    recomputed from ``x`` (integer variables rounded); ``bound`` a proven lower
    bound on the optimum.
    """

    status: str
    x: np.ndarray | None = None
    objective: float | None = None
    bound: float | None = None
    time_limited: bool = False
    message: str = ""
    stats: dict[str, Any] = field(default_factory=dict)


def solve_milp(milp: MILP, backend: str = "highs", *, time_limit_s: float = 60.0, threads: int = 1,
               seed: int = 0, rel_gap: float = 1e-6, verbose: bool = False) -> MILPResult:
    """Solve ``milp`` with ``backend`` (one of :data:`BACKENDS`).

    Parameters
    ----------
    milp : MILP
    backend : str
    time_limit_s, threads, seed, rel_gap, verbose
        Passed to the backend (``highs`` ignores ``threads``: see the module notes).

    Returns
    -------
    MILPResult
    """
    runners = {"highs": _highs, "cbc": _cbc, "cpsat": _cpsat, "scip": _scip}
    if backend not in runners:
        raise ValueError(f"unknown MILP backend {backend!r} (expected one of {', '.join(BACKENDS)})")
    started = time.perf_counter()
    if np.any(milp.row_lo > milp.row_hi) or np.any(milp.var_lo > milp.var_hi):
        return MILPResult("infeasible", message="a row or variable has lower bound > upper bound",
                          stats={"backend": backend})
    # Adapters take the deadline: building a backend's model counts against the limit too.
    with _native_stdout(verbose):
        result = runners[backend](milp, started + max(time_limit_s, 0.01), threads, seed, rel_gap, verbose)
    if result.x is not None:
        x = np.where(milp.integer, np.round(result.x), result.x)
        result.x = np.clip(x, milp.var_lo, milp.var_hi)
        result.objective = float(milp.c @ result.x + milp.offset)
        if result.bound is not None:
            result.bound = min(result.bound, result.objective)
    result.stats.update(backend=backend, variables=milp.num_vars, rows=milp.num_rows,
                        integer_variables=int(milp.integer.sum()),
                        backend_time_s=round(time.perf_counter() - started, 4))
    return result


@contextlib.contextmanager
def _native_stdout(verbose: bool) -> Iterator[None]:
    """Keep the backends' native writes off standard output (it carries plans and JSON).

    HiGHS's C++ prints debug lines with ``printf`` even with ``disp`` off (one of them,
    ``HighsMipSolverData::transformNewIntegerFeasibleSolution``, seen with scipy 1.17), and CBC's
    child process inherits file descriptor 1. For the call, descriptor 1 points at stderr when
    ``verbose`` (the log is wanted, but not among the output) and at the null device otherwise.
    """
    try:
        sys.stdout.flush()
        saved = os.dup(1)
    except (OSError, ValueError, AttributeError):  # no usable descriptor 1: nothing to protect
        yield
        return
    target = os.dup(2) if verbose else os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(target, 1)
        yield
    finally:
        _flush_c_stdio()
        os.dup2(saved, 1)
        os.close(saved)
        os.close(target)


def _flush_c_stdio() -> None:
    """Flush the C library's buffered streams, so what the backend printed goes where it was sent."""
    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError, TypeError):  # no C library to reach (Windows): nothing buffered to move
        pass


def handover_seconds(backend: str, nonzeros: int) -> float:
    """About how long ``backend``'s Python adapter takes to build and hand over a model of ``nonzeros``
    coefficients, before the backend's own clock starts (measured on the 500-block x 4-device program,
    2.0 M nonzeros: PuLP/CBC 44.8 s, SCIP's proto 15.2 s, CP-SAT 14.1 s; scipy's HiGHS wrapper 2.1 s per
    call, converting the arrays and each variable's integrality in Python)."""
    return nonzeros * _HANDOVER_S_PER_NONZERO.get(backend, 0.0)


def _too_slow_to_build(backend: str, milp: MILP, deadline: float) -> MILPResult | None:
    """A ``no_solution`` result when building ``backend``'s model alone would overrun the deadline."""
    need = handover_seconds(backend, milp.A.nnz)
    if need <= _left(deadline):
        return None
    return MILPResult("no_solution", time_limited=True,
                      message=f"{backend}'s model ({milp.A.nnz:,} nonzeros) takes about {need:.1f} s to build, more "
                              f"than the {_left(deadline):.1f} s left; stopped before building it")


def _left(deadline: float) -> float:
    """Seconds to the deadline (at least 10 ms, so a backend always gets a look)."""
    return max(deadline - time.perf_counter(), 0.01)


def _rows(milp: MILP):
    """Each row as (columns, coefficients, lo, hi)."""
    A = milp.A.tocsr()
    for i in range(A.shape[0]):
        s, e = A.indptr[i], A.indptr[i + 1]
        yield A.indices[s:e], A.data[s:e], milp.row_lo[i], milp.row_hi[i]


# -- HiGHS (scipy) -------------------------------------------------------------------------


def _highs(milp: MILP, deadline: float, threads: int, seed: int, rel_gap: float, verbose: bool) -> MILPResult:
    from scipy.optimize import Bounds, LinearConstraint, milp as scipy_milp

    options = {"time_limit": _left(deadline), "mip_rel_gap": rel_gap, "disp": verbose,
               # Passed to HiGHS verbatim (scipy warns that it does not check them).
               "random_seed": int(seed), "mip_feasibility_tolerance": _FEAS_TOL,
               "primal_feasibility_tolerance": _FEAS_TOL}
    # Placement programs are path formulations whose LP is already tight: HiGHS's presolve
    # (probing thousands of binaries) and feasibility jump cost seconds and gain nothing
    # (measured 3-10x faster without them on the benchmark instances).
    tuning = {"presolve": False, "mip_heuristic_run_feasibility_jump": False}
    constraints = LinearConstraint(milp.A, milp.row_lo, milp.row_hi) if milp.num_rows else None
    bounds = Bounds(milp.var_lo, milp.var_hi)

    def run(integrality: np.ndarray, opts: dict) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            try:
                return scipy_milp(milp.c, integrality=integrality, bounds=bounds, constraints=constraints,
                                  options={**opts, **tuning})
            except AttributeError:  # an older HiGHS without one of the tuning options
                return scipy_milp(milp.c, integrality=integrality, bounds=bounds, constraints=constraints,
                                  options=opts)

    # The LP relaxation first: path formulations are often integral at the root, and HiGHS's MIP
    # set-up (clique tables over thousands of binaries) costs far more than the LP itself. scipy's
    # wrapper works outside HiGHS's clock: HiGHS gets what is left after it.
    slow = _too_slow_to_build("highs", milp, deadline)
    if slow is not None:
        return slow
    handover = handover_seconds("highs", milp.A.nnz)
    options["time_limit"] = max(_left(deadline) - handover, 0.01)
    lp_started = time.perf_counter()
    lp = run(np.zeros(milp.num_vars, dtype=int), options)
    lp_s = time.perf_counter() - lp_started
    if lp.status == 2:
        return MILPResult("infeasible", message=lp.message, stats={"nodes": 0, "threads": 1, "root_lp": True})
    if lp.status == 0 and _integral(lp.x, milp.integer):
        return MILPResult("optimal", lp.x, bound=float(lp.fun) + milp.offset, message=lp.message,
                          stats={"nodes": 0, "threads": 1, "root_lp": True})
    if lp.status == 1 or (lp.status == 0 and _left(deadline) < _MIP_ROOT_FACTOR * lp_s + handover):
        # HiGHS's MIP solves the root LP again, cold, before it first looks at its clock; with less time
        # left than that takes (or none, when the relaxation itself hit the limit), starting it would
        # overrun the limit. A solved relaxation still bounds the optimum.
        bound = float(lp.fun) + milp.offset if lp.status == 0 else None
        return MILPResult("no_solution", bound=bound, time_limited=True,
                          message="time limit reached before branch and bound could start",
                          stats={"nodes": 0, "threads": 1, "root_lp": True})
    options["time_limit"] = max(_left(deadline) - handover, 0.01)
    res = run(milp.integer.astype(int), options)
    bound = res.get("mip_dual_bound")
    bound = float(bound) + milp.offset if bound is not None and math.isfinite(bound) else None
    stats = {"nodes": res.get("mip_node_count"), "threads": 1}
    has_x = res.x is not None
    if res.status == 0:
        return MILPResult("optimal", res.x, bound=bound, message=res.message, stats=stats)
    if res.status == 1:  # time or iteration limit
        return MILPResult("feasible" if has_x else "no_solution", res.x if has_x else None, bound=bound,
                          time_limited=True, message=res.message, stats=stats)
    if res.status == 2:
        return MILPResult("infeasible", message=res.message, stats=stats)
    return MILPResult("error", message=f"HiGHS: {res.message}", stats=stats)


def _ran_out(backend: str) -> MILPResult:
    return MILPResult("no_solution", time_limited=True, message=f"the time limit ran out while building {backend}'s "
                                                                 "model")


def _integral(x: np.ndarray | None, integer: np.ndarray) -> bool:
    return x is not None and bool(np.all(np.abs(x[integer] - np.round(x[integer])) <= _FEAS_TOL))


# -- CBC (PuLP) ----------------------------------------------------------------------------


def _objective_scale(c: np.ndarray) -> float:
    """A power of ten that brings the largest objective coefficient to about 1e3.

    CBC prunes nodes whose bound is within absolute tolerances (about 1e-6) of the
    incumbent; a throughput program minimises busy seconds per token, values near 1e-3
    whose differences near 1e-7 would then be lost (a wrong "optimal", 1e-5 off).
    """
    top = float(np.max(np.abs(c))) if c.size else 0.0
    return 10.0 ** round(3 - math.log10(top)) if top > 0 else 1.0

_CBC_BOUND = re.compile(r"Lower bound:\s*(-?[0-9.eE+-]+)")  # CBC's closing summary of a stopped run


def _cbc(milp: MILP, deadline: float, threads: int, seed: int, rel_gap: float, verbose: bool) -> MILPResult:
    import pulp

    slow = _too_slow_to_build("cbc", milp, deadline)
    if slow is not None:
        return slow
    prob = pulp.LpProblem("ilp", pulp.LpMinimize)
    xs = [prob.add_variable(f"x{j}", lowBound=float(lo), upBound=float(hi),
                            cat=pulp.LpInteger if isint else pulp.LpContinuous)
          for j, (lo, hi, isint) in enumerate(zip(milp.var_lo, milp.var_hi, milp.integer))]
    nz = np.flatnonzero(milp.c)
    scale = _objective_scale(milp.c)
    prob.setObjective(pulp.LpAffineExpression([(xs[j], float(milp.c[j]) * scale) for j in nz]))
    for i, (cols, vals, lo, hi) in enumerate(_rows(milp)):
        if i % _BUILD_CHECK_ROWS == 0 and time.perf_counter() >= deadline:
            return _ran_out("cbc")
        expr = pulp.LpAffineExpression([(xs[j], float(a)) for j, a in zip(cols, vals)])
        if lo == hi:
            prob.addConstraint(pulp.LpConstraint(expr, pulp.LpConstraintEQ, f"r{i}", float(hi)))
            continue
        if math.isfinite(hi):
            prob.addConstraint(pulp.LpConstraint(expr, pulp.LpConstraintLE, f"u{i}", float(hi)))
        if math.isfinite(lo):
            prob.addConstraint(pulp.LpConstraint(expr, pulp.LpConstraintGE, f"l{i}", float(lo)))
    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "cbc.log")
        # CBC's seed 0 means "time of day"; shift by one so every seed is reproducible. Its
        # presolve is off: on a throughput program it let root cuts raise the bound above a
        # feasible solution (a wrong "optimal", 3e-6 off), and it gains nothing on these models.
        if milp.x0 is not None:
            for j in np.flatnonzero(milp.integer):
                xs[j].setInitialValue(float(round(milp.x0[j])))
        solver = pulp.PULP_CBC_CMD(msg=False, timeLimit=_left(deadline), gapRel=rel_gap, threads=threads, logPath=log,
                                   warmStart=milp.x0 is not None,
                                   options=[f"randomCbcSeed {seed + 1}", f"randomSeed {seed + 1}",
                                            f"primalTolerance {_FEAS_TOL}", "presolve off"])
        ran = _run_killable(lambda: _cbc_solve(prob, solver, xs), deadline + _KILL_GRACE_S)
        text = open(log).read() if os.path.exists(log) else ""
    if verbose:
        print(text)
    stats = {"threads": threads}
    if ran is None:
        return MILPResult("no_solution", time_limited=True, stats=stats,
                          message="CBC ran past its time limit (its root LP does not look at the clock) and was stopped")
    sol, status, values = ran
    found = _CBC_BOUND.findall(text)
    bound = float(found[-1]) / scale + milp.offset if found else None
    if sol in (pulp.LpSolutionOptimal, pulp.LpSolutionIntegerFeasible):
        x = np.array([v if v is not None else 0.0 for v in values], dtype=float)
        if sol == pulp.LpSolutionOptimal:
            # CBC proved optimality, or (when it says so) a gap within rel_gap: that is its bound.
            objective = float(milp.c @ x + milp.offset)
            within_gap = "within gap tolerance" in text
            bound = objective - rel_gap * max(abs(objective), 1e-12) if within_gap else objective
            return MILPResult("optimal", x, bound=bound, stats=stats)
        return MILPResult("feasible", x, bound=bound, time_limited=True, stats=stats)
    # CBC's preprocessing may stop at "infeasible or unbounded"; every variable here is bounded.
    bounded = bool(np.all(np.isfinite(milp.var_lo)) and np.all(np.isfinite(milp.var_hi)))
    if sol == pulp.LpSolutionInfeasible or (bounded and "Stopped on" not in text
                                            and re.search(r"infeasible( or unbounded)?\b", text)):
        return MILPResult("infeasible", stats=stats)
    if sol == pulp.LpSolutionNoSolutionFound:
        return MILPResult("no_solution", bound=bound, time_limited=True, stats=stats)
    return MILPResult("error", message=f"CBC: {pulp.LpStatus.get(status, status)}", stats=stats)


def _cbc_solve(prob, solver, xs) -> tuple[int, int, list]:
    prob.solve(solver)
    return prob.sol_status, prob.status, [v.varValue for v in xs]


def _run_killable(work, kill_at: float):
    """``work()`` in a forked child (its own process group, so the backend binary it starts goes with
    it), its result, or ``None`` when it is still running at ``kill_at`` (``time.perf_counter()``) and
    was killed."""
    import multiprocessing
    import signal

    if multiprocessing.current_process().daemon:
        # multiprocessing starts no child from a daemonic process (a dask worker by default).
        raise RuntimeError("cbc runs CBC in a child process, which this daemonic worker process cannot start "
                           "(for dask workers: distributed.worker.daemon: false); use the highs or scip backend")
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)

    def child() -> None:
        os.setsid()
        try:
            send.send(("ok", work()))
        except BaseException as exc:  # reported to the parent, which raises it
            send.send(("raised", repr(exc)))

    proc = ctx.Process(target=child, daemon=True)
    proc.start()
    send.close()
    try:
        if receive.poll(max(kill_at - time.perf_counter(), 0.0)):
            kind, value = receive.recv()
            proc.join()
            if kind == "raised":
                raise RuntimeError(f"CBC run failed: {value}")
            return value
    except EOFError:  # the child died without a word
        proc.join()
        raise RuntimeError(f"CBC run died (exit {proc.exitcode})") from None
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.join()
    return None


# -- SCIP (OR-Tools) -----------------------------------------------------------------------


def _scip(milp: MILP, deadline: float, threads: int, seed: int, rel_gap: float, verbose: bool) -> MILPResult:
    from ortools.linear_solver import linear_solver_pb2, pywraplp

    slow = _too_slow_to_build("scip", milp, deadline)
    if slow is not None:
        return slow
    solver = pywraplp.Solver.CreateSolver("SCIP")
    if solver is None:
        return MILPResult("error", message="OR-Tools was built without SCIP")
    # Built as one model proto: a coefficient at a time through the wrapper is seconds on large models.
    proto = linear_solver_pb2.MPModelProto()
    for lo, hi, isint, c in zip(milp.var_lo.tolist(), milp.var_hi.tolist(), milp.integer.tolist(), milp.c.tolist()):
        v = proto.variable.add()
        v.lower_bound, v.upper_bound, v.is_integer, v.objective_coefficient = lo, hi, isint, c
    proto.objective_offset = milp.offset
    for i, (cols, vals, lo, hi) in enumerate(_rows(milp)):
        if i % _BUILD_CHECK_ROWS == 0 and time.perf_counter() >= deadline:
            return _ran_out("scip")
        ct = proto.constraint.add()
        ct.var_index.extend(cols.tolist())
        ct.coefficient.extend(vals.tolist())
        ct.lower_bound, ct.upper_bound = float(lo), float(hi)  # +-inf read as unbounded
    error = solver.LoadModelFromProto(proto)
    if error:
        return MILPResult("error", message=f"SCIP: {error}")
    xs = solver.variables()
    obj = solver.Objective()
    if milp.x0 is not None:
        ints = np.flatnonzero(milp.integer)
        solver.SetHint([xs[j] for j in ints], [float(round(milp.x0[j])) for j in ints])
    if verbose:
        solver.EnableOutput()
    solver.SetTimeLimit(int(math.ceil(_left(deadline) * 1000)))
    threads_ok = solver.SetNumThreads(threads)
    solver.SetSolverSpecificParametersAsString(
        f"randomization/randomseedshift = {int(seed)}\nnumerics/feastol = {_FEAS_TOL}\n"
        f"limits/memory = {SCIP_MEMORY_MB}\n")
    params = pywraplp.MPSolverParameters()
    params.SetDoubleParam(params.RELATIVE_MIP_GAP, rel_gap)
    status = solver.Solve(params)
    stats = {"threads": threads if threads_ok else 1}
    bound = None
    if status in (pywraplp.Solver.OPTIMAL, pywraplp.Solver.FEASIBLE):
        stats["nodes"] = solver.nodes()
        b = obj.BestBound()
        bound = float(b) if math.isfinite(b) else None
        x = np.array([v.solution_value() for v in xs])
        if status == pywraplp.Solver.OPTIMAL:
            return MILPResult("optimal", x, bound=bound, stats=stats)
        return MILPResult("feasible", x, bound=bound, time_limited=True, stats=stats)
    if status == pywraplp.Solver.INFEASIBLE:
        return MILPResult("infeasible", stats=stats)
    if status == pywraplp.Solver.NOT_SOLVED:
        return MILPResult("no_solution", bound=bound, time_limited=True, stats=stats)
    return MILPResult("error", message=f"SCIP: status {status}", stats=stats)


# -- CP-SAT (OR-Tools) ---------------------------------------------------------------------

_SCALE_BITS = 36  # coefficients become integers of about 36 bits: ~1.5e-11 relative resolution
_STEP_BITS = 30   # a continuous variable takes 2**30 steps over its range


def _pow2_at_most(value: float) -> float:
    return 2.0 ** math.floor(math.log2(value))


def _cpsat(milp: MILP, deadline: float, threads: int, seed: int, rel_gap: float, verbose: bool) -> MILPResult:
    """CP-SAT on an integer image of ``milp``.

    CP-SAT takes integer variables and coefficients only, so:

    - a continuous variable ``x`` becomes ``step * z`` with integer ``z`` and a
      power-of-two ``step`` (2**30 steps over its range);
    - each row is scaled by a power of two so its largest coefficient has about
      36 bits, and rounded *conservatively* (coefficients up, right-hand side
      down): every solution CP-SAT returns keeps the limits of the float model
      exactly. A solution within ~1e-11 (relative) of a limit may be cut off, so
      CP-SAT's optimality and infeasibility proofs hold for limits tightened by
      that much. Rows of small integers (flows, counts) stay exact. A row may
      hold at most one continuous variable (its coefficient is then kept exact);
    - objective coefficients are rounded *down* at 36 bits, so CP-SAT's bound,
      divided by the scale, is a lower bound on the true objective. Each
      continuous objective variable widens the bound by one step plus the
      rounding its rows can add (``max_ones`` integer terms of one unit each).

    The reported objective is always recomputed in floats from the solution.
    """
    from ortools.sat.python import cp_model

    slow = _too_slow_to_build("cpsat", milp, deadline)
    if slow is not None:
        return slow
    n = milp.num_vars
    lo, hi = milp.var_lo.astype(float), milp.var_hi.astype(float)
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        return MILPResult("error", message="cpsat needs finite bounds on every variable")
    cont = ~milp.integer.astype(bool)
    step = np.ones(n)
    for j in np.flatnonzero(cont):
        step[j] = _pow2_at_most(max(hi[j] - lo[j], 1e-300) / 2.0 ** _STEP_BITS)
    zlo = np.where(cont, np.floor(lo / step), np.ceil(lo - 1e-9)).astype(np.int64)
    zhi = np.where(cont, np.ceil(hi / step), np.floor(hi + 1e-9)).astype(np.int64)
    model = cp_model.CpModel()
    zs = [model.new_int_var(int(a), int(b), "") for a, b in zip(zlo, zhi)]

    max_ones = milp.max_ones
    err_per_unit = np.zeros(n)  # rounding a row can add, per unit of each continuous variable in it
    for i, (cols, vals, rlo, rhi) in enumerate(_rows(milp)):
        if i % _BUILD_CHECK_ROWS == 0 and time.perf_counter() >= deadline:
            return _ran_out("cpsat")
        if len(cols) == 0:
            if not rlo <= 0.0 <= rhi:
                return MILPResult("infeasible", message="an empty row excludes 0")
            continue
        a = vals * step[cols]
        conts = cont[cols]
        if conts.sum() > 1:
            return MILPResult("error", message="cpsat: a row holds more than one continuous variable; "
                                               "use the highs, scip or cbc backend for this model")
        exact = np.all(a == np.round(a)) and np.max(np.abs(a)) < 2.0 ** 40
        if exact:
            k = 1.0
        else:
            k = 2.0 ** (_SCALE_BITS - math.ceil(math.log2(np.max(np.abs(a)))))
            if conts.any() and abs(a[conts][0]) * k < 1:  # keep the continuous coefficient whole
                k *= 2.0 ** math.ceil(-math.log2(abs(a[conts][0]) * k))
        ak = a * k
        reach = float(np.abs(ak) @ np.maximum(np.abs(zlo[cols]), np.abs(zhi[cols])))
        if reach + abs(rhi * k if math.isfinite(rhi) else 0.0) + abs(rlo * k if math.isfinite(rlo) else 0.0) \
                >= 2.0 ** 62:
            # CP-SAT refuses such a row as a possible overflow; say so in one line, not its model dump.
            return MILPResult("error", message="cpsat: the program's numbers are too wide for CP-SAT's 64-bit "
                                               "integers (a row's coefficients times its variables' ranges "
                                               "pass 2^62); use the highs, scip or cbc backend")
        if conts.any() and ak[conts][0] != round(ak[conts][0]):
            return MILPResult("error", message="cpsat: a continuous coefficient cannot be scaled to an integer")
        if rlo == rhi:
            if not np.all(ak == np.round(ak)) or (math.isfinite(rhi) and rhi * k != round(rhi * k)):
                return MILPResult("error", message="cpsat: an equality row has fractional coefficients")
            model.add(cp_model.LinearExpr.weighted_sum([zs[j] for j in cols], [int(v) for v in np.round(ak)])
                      == int(round(rhi * k)))
            continue
        nints = len(cols) - int(conts.sum())
        ones = min(nints, max_ones) if max_ones is not None else nints
        if conts.any():
            jc = cols[conts][0]
            err_per_unit[jc] = max(err_per_unit[jc], (ones + 1) / (k * abs(vals[conts][0])))
        if math.isfinite(rhi):
            model.add(cp_model.LinearExpr.weighted_sum([zs[j] for j in cols], [int(v) for v in np.ceil(ak)])
                      <= int(math.floor(rhi * k)))
        if math.isfinite(rlo):
            model.add(cp_model.LinearExpr.weighted_sum([zs[j] for j in cols], [int(v) for v in np.floor(ak)])
                      >= int(math.ceil(rlo * k)))

    cz = milp.c * step
    nz = np.flatnonzero(cz)
    K = 1.0
    if len(nz):
        # ~36 bits per coefficient, but the objective's range (coefficients x domains) must fit in 62.
        reach = float(np.sum(np.abs(cz[nz]) * np.maximum(np.abs(zlo[nz]), np.abs(zhi[nz]))))
        K = 2.0 ** min(_SCALE_BITS - math.ceil(math.log2(np.max(np.abs(cz[nz])))),
                       math.floor(math.log2(2.0 ** 60 / reach)))
    model.minimize(cp_model.LinearExpr.weighted_sum([zs[j] for j in nz], [int(v) for v in np.floor(cz[nz] * K)]))
    # A continuous objective variable may sit above its true optimum by one step plus its rows' rounding.
    widen = float(sum(abs(milp.c[j]) * (step[j] + err_per_unit[j]) for j in np.flatnonzero(cont & (milp.c != 0))))

    if milp.x0 is not None:
        for j in np.flatnonzero(milp.integer):
            model.add_hint(zs[j], int(round(milp.x0[j])))
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = _left(deadline)
    solver.parameters.num_workers = threads
    solver.parameters.random_seed = int(seed)
    solver.parameters.relative_gap_limit = rel_gap
    solver.parameters.log_search_progress = verbose
    invalid = model.validate()
    if invalid:
        return MILPResult("error", message=f"CP-SAT: invalid model: {invalid}")
    status = solver.solve(model)
    stats = {"threads": threads, "branches": solver.num_branches, "conflicts": solver.num_conflicts,
             "objective_scale": K}
    bound = None
    if status in (cp_model.OPTIMAL, cp_model.FEASIBLE, cp_model.UNKNOWN):
        b = solver.best_objective_bound
        if math.isfinite(b):
            bound = b / K + milp.offset - widen
    if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        x = np.array([solver.value(z) for z in zs], dtype=float) * step
        return MILPResult("optimal" if status == cp_model.OPTIMAL else "feasible", x, bound=bound,
                          time_limited=status == cp_model.FEASIBLE, stats=stats)
    if status == cp_model.INFEASIBLE:
        return MILPResult("infeasible", stats=stats)
    if status == cp_model.UNKNOWN:
        return MILPResult("no_solution", bound=bound, time_limited=True, stats=stats)
    return MILPResult("error", message=f"CP-SAT: {solver.status_name(status)}", stats=stats)
