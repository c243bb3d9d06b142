"""The one exception family users see: stages print its message as one line and exit non-zero (`describe`
turns any other exception into one line too)."""


class NasflowError(Exception):
    """A problem with the user's input (not a bug): printed as one line, exit status 2."""


class ArchError(NasflowError, ValueError):
    """A malformed or invalid architecture string / genotype."""


class ParamsError(NasflowError, ValueError):
    """An unknown key or a bad value in params.yaml or on the command line."""


class DataError(NasflowError):
    """A missing or corrupt dataset file."""


class CheckpointError(NasflowError):
    """A missing or corrupt checkpoint or artifact."""


def one_line(text) -> str:
    """`text` (a message, an exception) on one line: its lines joined by spaces."""
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def _cuda_oom_types() -> tuple:
    import sys

    torch = sys.modules.get("torch")  # only when the failing code imported torch
    oom = getattr(getattr(torch, "cuda", None), "OutOfMemoryError", None)
    return (oom,) if isinstance(oom, type) else ()


def describe(exc: BaseException) -> tuple[str, int]:
    """(one-line message, exit status) for any exception a stage or the CLI lets escape.

    Status 2: a problem with the input or the machine, said in words (a NasflowError, a missing or unwritable
    file, a full disk, out of memory), with a hint where one exists. Status 1: an internal error (a bug), named by
    its type and message; the caller points at the full traceback.
    """
    import errno

    if isinstance(exc, NasflowError):
        return one_line(exc) or type(exc).__name__, 2
    text = one_line(exc)
    if isinstance(exc, _cuda_oom_types()) or (isinstance(exc, RuntimeError) and "out of memory" in text.lower()):
        # CUDA's message runs on for several sentences: keep what failed and how much it asked for
        sentences = text.split(". ")
        short = ". ".join(s for s in sentences[:3] if not s.startswith(("Including", "Of the allocated", "If reserved")))
        return (f"out of GPU memory ({short.rstrip('.')}): use a smaller batch_size in the setting, "
                "or run fewer jobs per GPU (--resources gpu=N)", 2)
    if isinstance(exc, MemoryError):
        return ("out of memory (MemoryError): use a smaller data.subset or batch_size, or run fewer jobs at once "
                "(--cores / --jobs)", 2)
    if isinstance(exc, OSError) and exc.errno is not None:
        name = exc.filename if exc.filename is not None else None
        if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
            what = "no space left on device" if exc.errno == errno.ENOSPC else "disk quota exceeded"
            where = f" writing {name}" if name is not None else ""
            return f"{what}{where}: free some space, or put results/ on a larger disk", 2
        if isinstance(exc, FileNotFoundError):
            return f"file not found: {name}" if name is not None else f"file not found ({text})", 2
        if isinstance(exc, PermissionError):
            return f"permission denied: {name}" if name is not None else f"permission denied ({text})", 2
        cause = exc.strerror or type(exc).__name__
        return (f"{cause}: {name}" + (f" -> {exc.filename2}" if exc.filename2 else "") if name is not None
                else f"{type(exc).__name__}: {text}"), 2
    return f"internal error: {type(exc).__name__}: {text}" if text else f"internal error: {type(exc).__name__}", 1


class DivergedError(NasflowError):
    """A training or search whose loss (or a quantity derived from it) became non-finite (NaN/inf).

    Callers that can record the divergence (`status: diverged`) catch it; it never becomes a score."""
