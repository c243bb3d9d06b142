"""What made an artifact: the provenance record every JSON artifact and the workbook carry."""

from __future__ import annotations

import platform
import sys
from pathlib import Path


def provenance(params: dict, **extra) -> dict:
    """What made an artifact: the parameters, the code (the fingerprint of the calling stage and every module
    it imports, `nasflow.cache`), versions, host and command line."""
    import torch

    import nasflow
    from nasflow.cache import code_fingerprint

    caller = sys._getframe(1).f_globals
    module = caller.get("__name__")
    if module == "__main__" and caller.get("__spec__") is not None:  # python -m stages.<name>
        module = caller["__spec__"].name
    if not str(module).startswith(("stages.", "nasflow.")):
        module = "stages.common"  # outside a stage: the fingerprint of everything stages.common offers
    return {
        "fingerprint": code_fingerprint(module),
        "code": module,
        "nasflow": nasflow.__version__,
        "torch": str(torch.__version__),
        "python": platform.python_version(),
        "host": platform.node(),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "params": params,
        **extra,
    }
