"""A JSON value checked against a struct of the schema (schema/bundle.json), as the
value model's dict with every field present.

What a client sends as a schema struct in JSON (a tab's MonitorSnapshot) is checked
here before the server keeps it: each field a known one, of its type and range, lists
of their element type; a field left out gets its default (an empty list or text, a
zero, a struct of defaults), so whoever reads it back can rely on its shape. Pure
Python, walking the bundle's types: a few times faster than a pycapnp round trip.
"""

from __future__ import annotations

from typing import Any

from kernel.codec.bundle import INT_RANGES, EnumType, Field, ListType, StructType, Type, type_name


class SchemaMismatch(ValueError):
    """The value is not of the struct's shape; the message says where and why."""


def checked(value: object, struct: StructType, where: str = "") -> dict[str, Any]:
    """`value` as a `struct` with every field present; SchemaMismatch when it is not one."""
    if not isinstance(value, dict):
        raise SchemaMismatch(f"{where or 'the value'}: expected a {struct.name} (an object)")
    unknown = value.keys() - struct.fields_by_name.keys()
    if unknown:
        name = sorted(unknown)[0]
        raise SchemaMismatch(
            f"{where}{'.' if where else ''}{name}: {struct.name} has no such field"
        )
    return {
        f.name: _value(value[f.name], f.type, f"{where}{'.' if where else ''}{f.name}")
        if f.name in value
        else _default(f)
        for f in _fields(struct)
    }


def _fields(struct: StructType) -> list[Field]:
    if struct.discriminant_count or any(f.group is not None for f in struct.fields):
        raise TypeError(f"{struct.name}: unions and groups are not checked here")
    return struct.fields


def _value(value: object, kind: Type, where: str) -> Any:
    if isinstance(kind, StructType):
        return checked(value, kind, where)
    if isinstance(kind, ListType):
        if not isinstance(value, list):
            raise SchemaMismatch(f"{where}: expected a list of {type_name(kind.element)}")
        return [_value(item, kind.element, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(kind, EnumType):
        if value not in kind.enumerants:
            raise SchemaMismatch(f"{where}: expected one of {', '.join(kind.enumerants)}")
        return value
    if kind in INT_RANGES:
        low, high = INT_RANGES[kind]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise SchemaMismatch(f"{where}: expected an integer {low}..{high} ({kind})")
        return value
    if kind == "bool" and isinstance(value, bool):
        return value
    if kind == "text" and isinstance(value, str):
        return value
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if kind in ("float32", "float64") and number:
        return value
    if kind in ("bool", "text", "float32", "float64"):
        raise SchemaMismatch(f"{where}: expected a {kind}")
    raise TypeError(f"{where}: {type_name(kind)} fields are not checked here")


def _default(field: Field) -> Any:
    kind = field.type
    if isinstance(kind, StructType):
        return checked({}, kind)
    if isinstance(kind, ListType):
        return []
    if isinstance(kind, EnumType):
        return kind.enumerants[field.default or 0]
    if kind == "text":
        return field.default or ""
    return field.default
