"""The progress display on stderr: a bar with the runs done, what runs now, and the time left.

Shared by ``llmplace bench`` and ``llmplace compare``. The bar is drawn only
on a terminal unless asked for (``enabled=True``); without one, nothing is
drawn (a log gets the final summary, not a thousand redrawn bars).
"""

from __future__ import annotations

import sys
from types import TracebackType

from tqdm import tqdm

__all__ = ["Progress"]

_SHOWN_RUNNING = 3  # names of running tasks shown after "now:"


class Progress:
    """A progress bar of ``total`` runs; ``enabled=None`` draws it when stderr is a terminal.

    Examples
    --------
    >>> with Progress(2, "demo", enabled=False) as bar:
    ...     bar.running(["a dp"])
    ...     bar.advance()
    ...     bar.advance()
    >>> bar.done
    2
    """

    def __init__(self, total: int, description: str, enabled: bool | None = None, unit: str = "run"):
        show = sys.stderr.isatty() if enabled is None else enabled
        self._bar = tqdm(total=total, desc=description, unit=unit, file=sys.stderr, disable=not show,
                         dynamic_ncols=True, smoothing=0.1,
                         bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} "
                                    "[{elapsed}<{remaining} left]{postfix}")
        self.done = 0

    def running(self, labels: list[str], extra: str = "") -> None:
        """Say what runs now (and anything else worth a word, e.g. the budget left)."""
        shown = "; ".join(labels[:_SHOWN_RUNNING]) + (f" (+{len(labels) - _SHOWN_RUNNING})"
                                                       if len(labels) > _SHOWN_RUNNING else "")
        self._bar.set_postfix_str(" ".join(p for p in (f"now: {shown}" if shown else "", extra) if p),
                                  refresh=True)

    def advance(self, n: int = 1) -> None:
        self.done += n
        self._bar.update(n)

    def note(self, message: str) -> None:
        """A line above the bar (or on stderr when the bar is not drawn)."""
        if self._bar.disable:
            print(message, file=sys.stderr)
        else:
            self._bar.write(message, file=sys.stderr)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._bar.close()
