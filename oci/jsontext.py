"""JSON from untrusted bytes: the one loader every reader of a document goes through.

It refuses what Python's ``json`` takes but JSON (RFC 8259) does not: ``NaN``, ``Infinity`` and
``-Infinity``. Nesting too deep for the parser is malformed JSON, a ValueError like any other,
not a RecursionError that escapes every ``except ValueError``.
"""

from __future__ import annotations

import json

TYPE_CHECKING = False  # typing is for checkers: importing it would slow `ocikit run`
if TYPE_CHECKING:
    from typing import Any


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def loads(data: str | bytes, **kw: Any) -> Any:
    """``json.loads`` that raises ValueError for NaN/Infinity and for too-deep nesting."""
    try:
        return json.loads(data, parse_constant=_refuse_constant, **kw)
    except RecursionError:
        raise ValueError("nested too deeply") from None
