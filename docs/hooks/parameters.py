"""MkDocs hook: the parameter reference (`parameters.md`), generated at build time from
`workflow/schemas/params.schema.yaml`, the one place the parameters are described.

Every key of the schema gets a row: its dotted path (`settings.<name>.epochs`, `bench_search.scenarios[].cost_model`),
type, default, allowed values or range, and the schema's `description`. Nothing here is kept by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from mkdocs.structure.files import File

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "params.schema.yaml"
PAGE = "parameters.md"


def _resolve(node: dict, root: dict) -> dict:
    ref = node.get("$ref")
    if ref:
        target = root
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]
        return {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _value(v) -> str:
    return "`" + json.dumps(v, ensure_ascii=False) + "`"


def _type(node: dict) -> str:
    if "oneOf" in node:
        return " or ".join(_type(n) for n in node["oneOf"])
    t = node.get("type")
    if t is None:
        return "enum" if "enum" in node else "any"
    kinds = t if isinstance(t, list) else [t]
    out = []
    for k in kinds:
        if k == "array" and isinstance(node.get("items"), dict):
            inner = node["items"]
            out.append(f"list of {_type(inner) if 'enum' not in inner else 'enum'}")
        else:
            out.append(k)
    return " \\| ".join(out)


def _allowed(node: dict) -> str:
    if "oneOf" in node:
        return "; ".join(a for a in (_allowed(n) for n in node["oneOf"]) if a)
    parts = []
    enum = node.get("enum") or (node.get("items") or {}).get("enum")
    if enum:
        parts.append(", ".join(_value(e) for e in enum))
    src = node.get("items") if node.get("type") == "array" and isinstance(node.get("items"), dict) else node
    bounds = [("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("exclusiveMaximum", "<")]
    parts += [f"{sym} {src[k]}" for k, sym in bounds if k in src and not isinstance(src[k], bool)]
    for k, word in (("minItems", "at least"), ("maxItems", "at most")):
        if k in node:
            parts.append(f"{word} {node[k]} items")
    if node.get("uniqueItems"):
        parts.append("no repeats")
    if "pattern" in (node.get("propertyNames") or {}):
        parts.append(f"names match `{node['propertyNames']['pattern']}`")
    return "; ".join(parts)


def _cell(text: str) -> str:
    """One table cell: one line, pipes escaped, `<`/`>` outside code spans as entities (not HTML tags)."""
    parts = " ".join(str(text).split()).replace("|", "\\|").split("`")
    return "`".join(p if i % 2 else p.replace("<", "&lt;").replace(">", "&gt;") for i, p in enumerate(parts))


def _rows(name: str, node: dict, root: dict, required: bool, out: list) -> None:
    node = _resolve(node, root)
    default = _value(node["default"]) if "default" in node else ("required" if required else "")
    out.append((name, _type(node), default, _allowed(node), node.get("description", "")))
    req = set(node.get("required", []))
    for key, child in (node.get("properties") or {}).items():
        _rows(f"{name}.{key}", child, root, key in req, out)
    extra = node.get("additionalProperties")
    if isinstance(extra, dict) and (_resolve(extra, root).get("properties") or "description" in extra):
        _rows(f"{name}.<name>", extra, root, False, out)
    items = node.get("items")
    if isinstance(items, dict) and items.get("properties"):
        for key, child in items["properties"].items():
            _rows(f"{name}[].{key}", child, root, key in set(items.get("required", [])), out)


def render(schema: dict) -> str:
    """The Markdown page for `schema` (the parsed params schema)."""
    lines = [
        "# Parameter reference",
        "",
        "Every key of `params.yaml` (and of a study file given with `--configfile`), generated when the site is built "
        "from `workflow/schemas/params.schema.yaml`, which validates the file before any job starts: edit a "
        "description there, not here. A wrong key or value is one line naming it and a non-zero exit; a misspelt key "
        "names the nearest one. **default** `required` = the key must be given. See [Study files](studies.md) for "
        "the studies that ship with nasflow.",
        "",
        _cell(schema.get("description", "")),
        "",
    ]
    required = set(schema.get("required", []))
    header = ["| key | type | default | allowed | description |", "|---|---|---|---|---|"]

    def table(rows):
        return header + [f"| `{r[0]}` | {r[1]} | {r[2]} | {_cell(r[3])} | {_cell(r[4])} |" for r in rows] + [""]

    sections, scalars = [], []
    for key, node in schema["properties"].items():
        rows: list = []
        _rows(key, node, schema, key in required, rows)
        (sections if len(rows) > 1 else scalars).append((key, rows))
    lines += ["## Study-wide keys", ""] + table([r for _, rows in scalars for r in rows])
    for key, rows in sections:
        lines += [f"## `{key}`", ""]
        if rows[0][4]:  # the section's description above its table, not in its first row
            lines += [_cell(rows[0][4]), ""]
            rows[0] = (*rows[0][:4], "")
        lines += table(rows)
    return "\n".join(lines)


def on_files(files, config):
    schema = yaml.safe_load(SCHEMA.read_text())
    files.append(File.generated(config, PAGE, content=render(schema)))
    return files
