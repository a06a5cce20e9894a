"""Layouts for clusters whose regions are joined by links that can bind (geo-distributed clusters).

Inside a region no link binds (:attr:`Space.regions`); between two regions each device pair
has its own slow link. A layout then splits the model into consecutive *segments*, each
served by one region, or by two regions side by side that share its traffic; each region
lays out its segment as stages (:mod:`solvers.maxflow.search`'s threshold DP). Traffic
crosses between consecutive segments from the last stage of one region to the first stage
of the next over every pair of their devices: ``m x m'`` links for stages of ``m`` and
``m'`` devices, so a crossing carries about ``m m' c`` tokens/s (``c`` the median pair
capacity between the two regions). Widening a boundary stage costs the region blocks.

For every structure (chains of regions, a pair side by side before or after a third) the
best rate is found by bisection over a grid of rates at which each region's coverage (blocks
covered, for each pair of boundary-stage widths) is tabulated once; the layouts are then
judged by the exact routing and improved by the local search.
"""

from __future__ import annotations

import itertools

import numpy as np

from solvers.deadline import Deadline
from solvers.maxflow.search import _group_lengths, _group_plan, _most_blocks, _trim

__all__ = ["region_layouts"]

_WIDTHS = (1, 2, 3)
_GRID = 160


def _crossing(space, members_a: list[int], members_b: list[int]) -> float:
    """Median tokens/s one device pair carries from region a to region b."""
    caps = [space.pair_capacity(i, j) for i in members_a for j in members_b]
    return float(np.median(caps)) if caps else 0.0


class _Region:
    """One region's groups and its coverage table: blocks covered at each grid rate with boundary widths."""

    def __init__(self, space, region: int, lengths: list[np.ndarray], rates: np.ndarray):
        self.L = space.L
        self.groups = [g for g, members in enumerate(space.groups) if space.regions[members[0]] == region]
        self.sizes = {g: len(space.groups[g]) for g in self.groups}
        self.lengths = lengths
        self.rates = rates
        self.devices = [i for g in self.groups for i in space.groups[g]]
        # cover[w_in, w_out, t]: blocks covered at rates[t] with an entry stage of >= w_in devices and an
        # exit stage of >= w_out (the same stage when the region has one).
        self.cover = np.zeros((len(_WIDTHS), len(_WIDTHS), len(rates)), dtype=int)
        for t, rate in enumerate(rates):
            self.cover[:, :, t] = self._covers_at(rate)

    def _covers_at(self, rate: float) -> np.ndarray:
        best = {g: [_group_plan(self.lengths[g], n, rate)[0] for n in range(self.sizes[g] + 1)] for g in self.groups}
        out = np.zeros((len(_WIDTHS), len(_WIDTHS)), dtype=int)
        ends = [(g, m, _most_blocks(self.lengths[g], rate / m)) for g in self.groups for m in range(1, self.sizes[g] + 1)]
        ends = [e for e in ends if e[2] > 0]
        for a, w_in in enumerate(_WIDTHS):
            for b, w_out in enumerate(_WIDTHS):
                top = 0
                for g1, m1, k1 in ends:
                    if m1 < w_in:
                        continue
                    if m1 >= w_out:  # one stage serves as entry and exit
                        rest = sum(best[g][self.sizes[g] - (m1 if g == g1 else 0)] for g in self.groups)
                        top = max(top, k1 + rest)
                    for g2, m2, k2 in ends:
                        if m2 < w_out or (g2 == g1 and m1 + m2 > self.sizes[g1]):
                            continue
                        used = {g: (m1 if g == g1 else 0) + (m2 if g == g2 else 0) for g in self.groups}
                        rest = sum(best[g][self.sizes[g] - used[g]] for g in self.groups)
                        top = max(top, k1 + k2 + rest)
                out[a, b] = top
        return out

    def rates_for(self, widths: tuple[int, int]) -> np.ndarray:
        """``[L+1]``: the highest grid rate at which the region covers each number of blocks with these
        boundary widths (0 where it cannot)."""
        key = ("rates", widths)
        if key not in self.__dict__:
            cover = self.cover[_WIDTHS.index(widths[0]), _WIDTHS.index(widths[1])]
            out = np.zeros(self.L + 1)
            for t in range(len(self.rates)):  # rates rise with t, coverage falls: keep the last rate that covers
                out[: min(int(cover[t]), self.L) + 1] = self.rates[t]
            self.__dict__[key] = out
        return self.__dict__[key]

    def rate_for(self, blocks: int, w_in: int, w_out: int) -> float:
        """The highest grid rate at which the region covers ``blocks`` with these widths (0 if none)."""
        table = self.rates_for((w_in, w_out))
        return float(table[blocks]) if blocks < len(table) else 0.0

    def stages(self, rate: float, w_in: int, w_out: int) -> list[tuple[int, int, int]] | None:
        """Stages ``(group, m, k)`` covering the most blocks at ``rate``: entry first, exit last."""
        best_total, best_plan = -1, None
        ends = [(g, m, _most_blocks(self.lengths[g], rate / m)) for g in self.groups for m in range(1, self.sizes[g] + 1)]
        ends = [e for e in ends if e[2] > 0]
        for g1, m1, k1 in ends:
            if m1 < w_in:
                continue
            options = [None] if m1 >= w_out else []
            options += [e for e in ends if e[1] >= w_out and not (e[0] == g1 and m1 + e[1] > self.sizes[g1])]
            for exit_stage in options:
                used = {g: (m1 if g == g1 else 0) for g in self.groups}
                if exit_stage is not None:
                    used[exit_stage[0]] += exit_stage[1]
                middle = []
                total = k1 + (exit_stage[2] if exit_stage else 0)
                for g in self.groups:
                    covered, plan = _group_plan(self.lengths[g], self.sizes[g] - used[g], rate)
                    total += covered
                    middle += [(g, m, k) for m, k in plan]
                if total > best_total:
                    best_total = total
                    best_plan = [(g1, m1, k1), *middle] + ([exit_stage] if exit_stage else [])
        return best_plan


_LONGEST_CHAIN = 3  # regions in a row; _best_split cuts the model at most twice


def _structures(regions: list[int]) -> list[list[tuple[int, ...]]]:
    """Segment sequences: chains of one to three regions, and a pair side by side before or after a third.

    >>> _structures([0, 1])
    [[(0,)], [(1,)], [(0,), (1,)], [(1,), (0,)]]
    >>> len(_structures(list(range(8))))  # 8 + 8*7 + 8*7*6 chains, 28 pairs x 6 thirds x 2 sides
    736
    """
    out: list[list[tuple[int, ...]]] = []
    for q in range(1, min(len(regions), _LONGEST_CHAIN) + 1):
        for chain in itertools.permutations(regions, q):
            out.append([(r,) for r in chain])
    for a, b in itertools.combinations(regions, 2):
        for c in regions:
            if c not in (a, b):
                out.append([(a, b), (c,)])
                out.append([(c,), (a, b)])
    return out


def _best_split(segs, regs, crossing, L: int) -> tuple[float, tuple | None]:
    """Best rate of one structure over its cut points and boundary widths (grid resolution), vectorised
    over the cut points."""
    q = len(segs)
    if q == 1:
        lengths = [np.array([L])]
        cuts = [np.zeros(1, dtype=int)]
    elif q == 2:
        p = np.arange(1, L)
        lengths, cuts = [p, L - p], [p]
    else:
        p1, p2 = np.triu_indices(L, k=1)
        keep = p1 >= 1
        p1, p2 = p1[keep], p2[keep]
        lengths, cuts = [p1, p2 - p1, L - p2], [p1, p2]
    choices = []
    for j, seg in enumerate(segs):
        for r in seg:
            ins = _WIDTHS if j > 0 else (1,)
            outs = _WIDTHS if j < q - 1 else (1,)
            choices.append([(r, w_in, w_out) for w_in in ins for w_out in outs])
    best = (0.0, None)
    for combo in itertools.product(*choices):
        wmap = {r: (w_in, w_out) for r, w_in, w_out in combo}
        seg_rates = [{r: regs[r].rates_for(wmap[r])[lengths[j]] for r in seg} for j, seg in enumerate(segs)]
        rate = np.minimum.reduce([sum(per.values()) for per in seg_rates])
        for j in range(q - 1):
            here, there = segs[j], segs[j + 1]

            def link(r: int, s: int) -> float:
                return wmap[r][1] * wmap[s][0] * crossing[(r, s)]
            out_cap = sum(np.minimum(seg_rates[j][r], sum(link(r, s) for s in there)) for r in here)
            in_cap = sum(np.minimum(seg_rates[j + 1][s], sum(link(r, s) for r in here)) for s in there)
            rate = np.minimum(rate, np.minimum(out_cap, in_cap))
        k = int(np.argmax(rate))
        if float(rate[k]) > best[0]:
            bounds = [0, *(int(c[k]) for c in cuts if q > 1), L] if q > 1 else [0, L]
            best = (float(rate[k]), (bounds, wmap))
    return best


def region_layouts(space, upper: float, deadline: Deadline | None = None) -> list[tuple]:
    """Assignments laid out region by region (see the module docstring), best structure first; once
    ``deadline`` passes, of the structures judged so far (at least one, when any has a layout)."""
    region_ids = sorted(set(space.regions))
    if len(region_ids) < 2:
        return []
    lengths = _group_lengths(space)
    rates = np.geomspace(upper * 1e-3, upper, _GRID)
    regs = {r: _Region(space, r, lengths, rates) for r in region_ids}
    crossing = {(r, s): _crossing(space, regs[r].devices, regs[s].devices)
                for r in region_ids for s in region_ids if r != s}
    found = []
    for segs in _structures(region_ids):
        if found and deadline is not None and deadline.expired():
            break
        rate, how = _best_split(segs, regs, crossing, space.L)
        if how is not None and rate > 0:
            found.append((rate, segs, how))
    found.sort(key=lambda item: -item[0])
    out = []
    for rate, segs, (bounds, wmap) in found[:12]:
        assignment = _lay_structure(space, regs, segs, bounds, wmap, lengths)
        if assignment is not None and assignment not in out:
            out.append(assignment)
    return out


def _lay_structure(space, regs, segs, bounds, wmap, lengths):
    out: list = [None] * space.n
    free = {g: list(members) for g, members in enumerate(space.groups)}
    for j, seg in enumerate(segs):
        start, end = bounds[j], bounds[j + 1]
        for r in seg:
            rate = regs[r].rate_for(end - start, *wmap[r])
            stages = regs[r].stages(rate, *wmap[r]) if rate > 0 else None
            if not stages:
                return None
            stages = [list(s) for s in stages]
            # The middle stages shorten first: the boundary stages keep their widths.
            _trim(stages, lengths, end - start, order=list(range(1, len(stages) - 1)) + [0, len(stages) - 1])
            pos = start
            for g, m, k in stages:
                if k <= 0:
                    continue
                rng = (pos, pos + k)
                for _ in range(m):
                    if not free[g]:
                        return None
                    i = free[g].pop(0)
                    if not space.ok[i, rng[0], rng[1]]:
                        return None
                    out[i] = rng
                pos += k
            if pos != end:
                return None
    return tuple(out)
