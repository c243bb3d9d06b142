"""Progress of a long loop, readable on a terminal and in a log file alike.

On a terminal (stderr is a tty) a tqdm bar counts steps. Anywhere else -- a job log (the stages' stderr under
Snakemake, `NASFLOW_LOG`), a pipe, a CI console -- there is no bar (its carriage returns make a file
unreadable); instead `line()` prints one plain line per call (one per epoch), flushed at once, so a log shows
how far a job is while it runs. `enabled=False` is silent in both cases (tests, estimator queries).
"""
from __future__ import annotations

import sys


def stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced by an object without isatty, or closed
        return False


def say(text: str) -> None:
    """One line on stderr, flushed (so a log file shows it while the job runs)."""
    print(text, file=sys.stderr, flush=True)


class Progress:
    """`update(n)` per step (the bar), `line(text)` per epoch (a plain line when there is no bar)."""

    def __init__(self, enabled: bool, *, total: int, initial: int = 0, desc: str = "", unit: str = "step"):
        self.desc = desc
        self.lines = enabled and not stderr_is_terminal()
        self.bar = None
        if enabled and not self.lines:
            from tqdm.auto import tqdm

            self.bar = tqdm(file=sys.stderr, leave=False, unit=unit, dynamic_ncols=True, total=total,
                            initial=initial, desc=desc)

    def update(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def set_postfix(self, **kw) -> None:
        if self.bar is not None:
            self.bar.set_postfix(**kw)

    def line(self, text: str) -> None:
        """`<desc> <text>` on stderr when there is no bar (a log), nothing on a terminal (the bar shows it)."""
        if self.lines:
            say(f"{self.desc} {text}" if self.desc else text)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def fmt(value, spec: str = ".2f", suffix: str = "") -> str:
    """A number for a progress line; '-' for None."""
    return "-" if value is None else f"{value:{spec}}{suffix}"
