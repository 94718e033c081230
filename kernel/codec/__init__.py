"""A pure-Python Cap'n Proto codec driven by the compiled schema bundle.

Standard library only, so it runs in Pyodide too. See `reader` for the
decoding rules and hardening, `builder` for encoding, `bundle` for the
schema model and `server/schemabuild.py` for how the bundle is made.
"""

from kernel.codec.builder import encode
from kernel.codec.bundle import (
    Bundle,
    EnumType,
    Field,
    InterfaceType,
    ListType,
    Method,
    StructType,
)
from kernel.codec.errors import DecodeError, EncodeError
from kernel.codec.reader import DEFAULT_NESTING_LIMIT, DEFAULT_TRAVERSAL_LIMIT_WORDS, decode

__all__ = [
    "DEFAULT_NESTING_LIMIT",
    "DEFAULT_TRAVERSAL_LIMIT_WORDS",
    "Bundle",
    "DecodeError",
    "EncodeError",
    "EnumType",
    "Field",
    "InterfaceType",
    "ListType",
    "Method",
    "StructType",
    "decode",
    "encode",
]
