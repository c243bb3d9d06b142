"""What every stage shares, by seam: `stages.params` (loading and validating params.yaml, its defaults, what the
stages read from it), `stages.artifacts` (atomic writes, JSON and checked result files), `stages.provenance`
(what made an artifact), `stages.guard` (options, the job log and the one-line error contract) and
`stages.devices` (threads, the claimed device, packing). Stages import from those modules; this one keeps the
old import path working (`from stages.common import load_params`, the Snakefile before this split)."""

from __future__ import annotations

from nasflow.errors import CheckpointError, ParamsError
from stages.artifacts import (
    atomic_path,
    plain,
    read_json,
    read_results,
    write_json,
)
from stages.devices import (
    claim,
    configure_torch,
    training_options,
)
from stages.guard import (
    ArgumentParser,
    main_guard,
    parse_shard,
    parser,
)
from stages.params import (
    BUILT_TABLE,
    CHOSEN_BUDGET,
    CHOSEN_BUDGET_FILE,
    PROTOCOL_KEYS,
    ROOT,
    SCHEMA,
    load_params,
    proxy_setting,
    search_names,
    supernet_estimators,
    table_path,
    validate_params,
    write_resolved_params,
)
from stages.provenance import (
    provenance,
)

__all__ = ["CheckpointError", "ParamsError", "ArgumentParser", "atomic_path", "BUILT_TABLE", "CHOSEN_BUDGET", "CHOSEN_BUDGET_FILE", "claim", "configure_torch", "load_params", "main_guard", "parse_shard", "parser", "plain", "PROTOCOL_KEYS", "provenance", "proxy_setting", "read_json", "read_results", "ROOT", "SCHEMA", "search_names", "supernet_estimators", "table_path", "training_options", "validate_params", "write_json", "write_resolved_params"]
