"""The stages' command line and their one-line error contract: option parsing whose usage errors are one line,
the job log (NASFLOW_LOG) and the guard around every stage's main."""

from __future__ import annotations

import argparse
import functools
import os
import sys
from pathlib import Path
from typing import Callable

from nasflow.errors import ParamsError, describe, one_line


def parse_shard(text: str) -> tuple[int, int]:
    """'i/n' -> (i, n) with 0 <= i < n."""
    try:
        i, n = (int(p) for p in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard must look like i/n, got {text!r}") from None
    if not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"--shard {text}: need 0 <= i < n")
    return i, n


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are a ParamsError (so one line through main_guard, not a usage block)."""

    def error(self, message):
        raise ParamsError(f"{one_line(message)} (see --help)")


def parser(description: str) -> argparse.ArgumentParser:
    p = ArgumentParser(description=description)
    p.add_argument("--params", default="params.yaml", help="the params file (default: params.yaml)")
    return p


def _stage_name(func) -> str:
    module = func.__module__
    if module == "__main__":  # python -m stages.<name>
        spec = getattr(sys.modules["__main__"], "__spec__", None)
        module = spec.name if spec is not None else Path(sys.argv[0]).stem
    return module.removeprefix("stages.")


class _JobLog:
    """While a stage runs with NASFLOW_LOG set: file descriptor 2 (so Python's, torch's and C code's stderr
    alike) appends to that file; the terminal's stderr is kept aside for the one-line error."""

    def __init__(self, path: str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        sys.stderr.flush()
        self.console = os.dup(2)
        os.dup2(fd, 2)
        os.close(fd)

    def close(self) -> None:
        sys.stderr.flush()
        os.dup2(self.console, 2)
        os.close(self.console)


def main_guard(func: Callable[[], None]) -> Callable[[], None]:
    """Run a stage's main so that any failure is one line on stderr, `error: <stage>: <what> ...`, never a
    traceback: exit status 2 for bad input or machine trouble (a NasflowError, a missing file, a full disk, out
    of memory), 1 for an internal error, 130 when interrupted. With NASFLOW_LOG=<file> (the Snakemake rules set
    it to the job's log) the stage's stderr goes to that file, which also gets the full traceback; the one
    line goes to both, and the log also gets a first and a last line (the command; `done in N s`), so no job log
    is ever empty. NASFLOW_DEBUG=1 shows the traceback on the terminal too."""

    @functools.wraps(func)
    def wrapper():
        stage = _stage_name(func)
        log = None
        if os.environ.get("NASFLOW_LOG"):
            try:
                log = _JobLog(os.environ["NASFLOW_LOG"])
            except OSError as e:  # an unwritable log must not hide the stage's own outcome
                print(f"warning: {stage}: cannot write the log {os.environ['NASFLOW_LOG']} ({e.strerror})",
                      file=sys.stderr)
        if log:
            import time

            started = time.perf_counter()
            print(f"{stage}: started: {' '.join(['python -m stages.' + stage, *sys.argv[1:]])}", file=sys.stderr,
                  flush=True)
        try:
            func()
            if log:
                print(f"{stage}: done in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
        except (Exception, KeyboardInterrupt) as e:
            import traceback

            message, status = ("interrupted", 130) if isinstance(e, KeyboardInterrupt) else describe(e)
            debug = os.environ.get("NASFLOW_DEBUG", "") not in ("", "0")
            if status == 1 and (log or not debug):
                message += f" (full traceback in {log.path})" if log else " (set NASFLOW_DEBUG=1 to see the traceback)"
            line = f"error: {stage}: {message}\n"
            trace = traceback.format_exc()
            if log:
                sys.stderr.write(trace + line)
                sys.stderr.flush()
                os.write(log.console, ((trace if debug else "") + line).encode())
            else:
                sys.stderr.write((trace if debug else "") + line)
            sys.exit(status)
        finally:
            if log:
                log.close()

    return wrapper
