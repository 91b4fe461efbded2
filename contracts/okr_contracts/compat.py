"""Backward-compatibility check between a published JSON Schema and a new one.

Compatible means both directions of a long-lived topic keep working: a consumer
built against the published schema reads what the new producer writes, and a
consumer built against the new schema replays old messages from offset zero.
So these are breaking: a required field removed or renamed, a field that becomes
required, a changed type or format, a removed enum value, a changed constant,
and bounds that reject values the published schema accepted. Adding an optional
field or a new enum value is allowed (consumers read tolerantly).
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

_TIGHTER_IF_GREATER = ("minimum", "exclusiveMinimum", "minLength", "minItems")
_TIGHTER_IF_SMALLER = ("maximum", "exclusiveMaximum", "maxLength", "maxItems")


def incompatibilities(old: Schema, new: Schema) -> list[str]:
    """Every breaking difference from `old` to `new`, each naming its JSON path."""
    problems: list[str] = []
    _compare(_Resolver(old), old, _Resolver(new), new, "$", problems)
    return problems


class _Resolver:
    def __init__(self, root: Schema) -> None:
        self.defs: Schema = root.get("$defs", {})

    def resolve(self, node: Schema) -> Schema:
        while "$ref" in node:
            node = self.defs[node["$ref"].rsplit("/", 1)[-1]]
        return node


def _variants(res: _Resolver, node: Schema) -> list[Schema]:
    node = res.resolve(node)
    for key in ("anyOf", "oneOf"):
        if key in node:
            out: list[Schema] = []
            for sub in node[key]:
                out.extend(_variants(res, sub))
            return out
    return [node]


def _kind(node: Schema) -> str:
    if "const" in node and "type" not in node:
        return type(node["const"]).__name__
    kind = node.get("type", "any")
    return ",".join(sorted(kind)) if isinstance(kind, list) else str(kind)


def _compare(ro: _Resolver, old: Schema, rn: _Resolver, new: Schema, path: str, out: list[str]) -> None:
    old_vs, new_vs = _variants(ro, old), _variants(rn, new)
    old_kinds = sorted({_kind(v) for v in old_vs})
    new_kinds = sorted({_kind(v) for v in new_vs})
    if old_kinds != new_kinds:
        out.append(f"{path}: type changed from {'|'.join(old_kinds)} to {'|'.join(new_kinds)}")
        return
    for kind in old_kinds:
        o = next(v for v in old_vs if _kind(v) == kind)
        n = next(v for v in new_vs if _kind(v) == kind)
        _compare_same_kind(ro, o, rn, n, path, out)


def _compare_same_kind(ro: _Resolver, o: Schema, rn: _Resolver, n: Schema, path: str, out: list[str]) -> None:
    if o.get("format") != n.get("format"):
        out.append(f"{path}: format changed from {o.get('format')} to {n.get('format')}")
    if "const" in o and o.get("const") != n.get("const"):
        out.append(f"{path}: constant changed from {o['const']!r} to {n.get('const')!r}")
    if "enum" in o:
        new_enum = n.get("enum") or o["enum"]
        removed = [v for v in o["enum"] if v not in new_enum]
        if removed:
            out.append(f"{path}: enum values removed: {removed}")
    if o.get("pattern") != n.get("pattern") and "pattern" in n:
        out.append(f"{path}: pattern changed from {o.get('pattern')!r} to {n['pattern']!r}")
    _compare_bounds(o, n, path, out)
    if _kind(o) == "object":
        _compare_objects(ro, o, rn, n, path, out)
    elif _kind(o) == "array" and "items" in o and "items" in n:
        _compare(ro, o["items"], rn, n["items"], f"{path}[]", out)


def _compare_bounds(o: Schema, n: Schema, path: str, out: list[str]) -> None:
    for key in _TIGHTER_IF_GREATER:
        if key in n and (key not in o or n[key] > o[key]):
            out.append(f"{path}: {key} tightened from {o.get(key)} to {n[key]}")
    for key in _TIGHTER_IF_SMALLER:
        if key in n and (key not in o or n[key] < o[key]):
            out.append(f"{path}: {key} tightened from {o.get(key)} to {n[key]}")


def _compare_objects(ro: _Resolver, o: Schema, rn: _Resolver, n: Schema, path: str, out: list[str]) -> None:
    old_props: Schema = o.get("properties", {})
    new_props: Schema = n.get("properties", {})
    old_req, new_req = set(o.get("required", ())), set(n.get("required", ()))
    for name, sub in old_props.items():
        if name not in new_props:
            if name in old_req:
                out.append(f"{path}.{name}: required field removed or renamed")
            continue
        _compare(ro, sub, rn, new_props[name], f"{path}.{name}", out)
    for name in sorted(new_req - old_req):
        out.append(f"{path}.{name}: field is required now but was not before")
