"""The routing program of a small cache, by a dense revised simplex that starts from the last basis.

The greedy routes a cache exactly after every local move (:mod:`solvers.caching.greedy_local`),
and its programs are tiny (one row per class, one per device with busy time, a column per
routable option), differ by a few columns from one move to the next, and are solved hundreds of
times. HiGHS through :func:`scipy.optimize.linprog` takes about 2 ms each, nearly all of it
setting up; it cannot be handed a starting basis. This solver keeps the optimal basis of the
last program and starts the next from what is left of it, so a move costs a few pivots.

The program, in equality form: for each class ``c``, its options' shares plus its unserved
share ``u[c]`` equal 1; for each device ``d``, its options' busy shares plus a slack equal the
time limit; all variables non-negative. The basis of every ``u`` and every slack is feasible
(everything unserved), so no first phase is needed: a warm basis that is singular or not
feasible is replaced by that one. Pivots follow Dantzig's rule, then Bland's (which cannot
cycle) after a run of degenerate pivots; the basis inverse is refactored periodically.

Every solution is checked before it is returned (primal rows and signs, dual signs, on a fresh
factorisation): one that fails, or a run past its pivot limit, returns ``None``, and the
caller solves the program with HiGHS instead. So this is a fast path, never a second opinion.

Examples
--------
Two classes, one device that holds 0.9 of its time: class 0 can use it (0.5 busy per share) or
an option that keeps it idle at cost 5; class 1 only the device (0.8 busy per share).

>>> import numpy as np
>>> program = RoutingProgram(classes=np.array([0, 0, 1]), costs=np.array([1.0, 5.0, 2.0]),
...                          devices=np.array([0, -1, 0]), busy=np.array([0.5, 0.0, 0.8]),
...                          unserved_cost=np.array([100.0, 100.0]), time_limit=0.9, num_devices=1)
>>> found = program.solve()
>>> np.round(found.shares, 3).tolist(), round(found.objective, 3)
([0.2, 0.8, 1.0], 6.2)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["RoutingProgram", "SimplexResult"]

_REFACTOR = 40  # pivots between fresh factorisations of the basis
_PIVOT_TOL = 1e-11
_FEAS_TOL = 1e-9
_DEGENERATE_RUN = 2  # times the row count: degenerate pivots in a row before Bland's rule


@dataclass(frozen=True)
class SimplexResult:
    """Shares of the program's option columns, prices (``class_price`` per class, ``time_price`` per
    device, 0 where it has time left), the objective, and the basis (labels, for a warm start)."""

    shares: np.ndarray
    class_price: np.ndarray
    time_price: np.ndarray
    objective: float
    basis: tuple
    pivots: int


class RoutingProgram:
    """The routing program over option columns (see the module docstring).

    Parameters
    ----------
    classes, costs, devices, busy : arrays over option columns
        Each column's class, cost per unit share, device (-1: none) and busy share per unit
        share there; ``devices2, busy2``: a second device (cascades over two devices).
    labels : sequence, optional
        A name per option column, to carry a basis from one program to the next.
    """

    def __init__(self, classes, costs, devices, busy, unserved_cost, time_limit: float, num_devices: int,
                 devices2=None, busy2=None, labels=None):
        C = len(unserved_cost)
        n = len(classes)
        devices2 = np.full(n, -1) if devices2 is None else devices2
        busy2 = np.zeros(n) if busy2 is None else busy2
        timed = np.zeros(num_devices, dtype=bool)
        timed[devices[(devices >= 0) & (busy > 0)]] = True
        timed[devices2[(devices2 >= 0) & (busy2 > 0)]] = True
        self.devices = np.flatnonzero(timed)
        row_of = np.full(num_devices, -1)
        row_of[self.devices] = C + np.arange(len(self.devices))
        m = C + len(self.devices)
        A = np.zeros((m, n + m))
        A[classes, np.arange(n)] = 1.0
        for dev, b in ((devices, busy), (devices2, busy2)):  # a column's two devices differ: no entry twice
            on = (dev >= 0) & (b > 0)
            A[row_of[dev[on]], np.flatnonzero(on)] = b[on]
        A[np.arange(m), n + np.arange(m)] = 1.0  # u[c] on class rows, a slack on device rows
        # Columns contiguous for the pivot column, rows contiguous for pricing every column at once.
        self.A, self.AT = np.asfortranarray(A), np.ascontiguousarray(A.T)
        self.n, self.m, self.C, self.num_devices = n, m, C, num_devices
        self.c = np.concatenate([costs, unserved_cost, np.zeros(len(self.devices))])
        self.b = np.concatenate([np.ones(C), np.full(len(self.devices), time_limit)])
        self.labels = list(labels) if labels is not None else list(range(n))
        self.labels += [("unserved", c) for c in range(C)] + [("slack", int(d)) for d in self.devices]
        self.scale = max(float(np.abs(self.c).max(initial=0.0)), 1.0)

    def _start(self, basis: tuple | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A feasible starting basis: the warm one when it still is one, else every u and slack."""
        cold = np.arange(self.n, self.n + self.m)
        if basis:
            index = {label: j for j, label in enumerate(self.labels)}
            cols = [index[label] for label in basis if label in index]
            # Rows the old basis no longer covers get their own u or slack.
            for j in cold:
                if len(cols) >= self.m:
                    break
                if j not in cols:
                    cols.append(j)
            cols = np.array(cols[:self.m])
            if len(cols) == self.m and len(set(cols.tolist())) == self.m:
                try:
                    Binv = np.linalg.inv(self.A[:, cols])
                except np.linalg.LinAlgError:
                    Binv = None
                if Binv is not None and np.isfinite(Binv).all() and np.abs(Binv).max() < 1e10:
                    x = Binv @ self.b
                    if x.min() >= -_FEAS_TOL:
                        return cols, Binv, np.maximum(x, 0.0)
        return cold, np.eye(self.m), self.b.copy()

    def solve(self, basis: tuple | None = None, max_pivots: int | None = None) -> SimplexResult | None:
        """The optimum, or ``None`` when the pivot limit is reached or the answer fails its check."""
        A, c, b, m = self.A, self.c, self.b, self.m
        cols, Binv, x = self._start(basis)
        tol = 1e-12 * self.scale
        limit = max_pivots if max_pivots is not None else 50 * (m + 10)
        degenerate, bland, pivots = 0, False, 0
        while True:
            if pivots and pivots % _REFACTOR == 0:
                Binv = np.linalg.inv(A[:, cols])
                x = np.maximum(Binv @ b, 0.0)
            y = c[cols] @ Binv
            reduced = c - self.AT @ y
            reduced[cols] = 0.0
            if bland:
                entering = np.flatnonzero(reduced < -tol)
                if not entering.size:
                    break
                e = int(entering[0])
            else:
                e = int(np.argmin(reduced))
                if reduced[e] >= -tol:
                    break
            if pivots >= limit:
                return None
            column = Binv @ A[:, e]
            positive = column > _PIVOT_TOL
            if not positive.any():
                return None  # unbounded: cannot happen (every share is at most 1), so a numerical failure
            ratios = np.where(positive, x / np.where(positive, column, 1.0), np.inf)
            theta = ratios.min()
            ties = np.flatnonzero(ratios <= theta + 1e-12)
            r = int(ties[np.argmin(cols[ties])]) if bland else int(ties[np.argmax(column[ties])])
            degenerate = degenerate + 1 if theta <= 1e-12 else 0
            bland = bland or degenerate > _DEGENERATE_RUN * m
            x = np.maximum(x - theta * column, 0.0)
            x[r] = theta
            pivot_row = Binv[r] / column[r]
            Binv -= np.outer(column, pivot_row)
            Binv[r] = pivot_row
            cols[r] = e
            pivots += 1
        return self._checked(cols, pivots)

    def _checked(self, cols: np.ndarray, pivots: int) -> SimplexResult | None:
        A, c, b = self.A, self.c, self.b
        try:
            Binv = np.linalg.inv(A[:, cols])
        except np.linalg.LinAlgError:
            return None
        xb = Binv @ b
        y = c[cols] @ Binv
        reduced = c - y @ A
        if xb.min() < -_FEAS_TOL or reduced.min() < -1e-9 * self.scale:
            return None
        x = np.zeros(A.shape[1])
        x[cols] = np.maximum(xb, 0.0)
        if np.abs(A @ x - b).max() > _FEAS_TOL:
            return None
        time_price = np.zeros(self.num_devices)
        time_price[self.devices] = np.maximum(0.0, -y[self.C:])
        return SimplexResult(shares=x[:self.n], class_price=y[:self.C], time_price=time_price,
                             objective=float(c @ x), basis=tuple(self.labels[j] for j in cols), pivots=pivots)
