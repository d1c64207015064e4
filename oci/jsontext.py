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


def read_object(source: str, option: str, what: str) -> dict:
    """The JSON object in the file ``source`` (``-``: standard input) that a command's
    ``option`` names; ``what`` says what it should hold, for the error. UsageError naming the
    option when it cannot be read, is not JSON, or is not an object."""
    import os
    import sys

    from .errors import UsageError

    try:
        if source == "-":
            data: str | bytes = sys.stdin.read()
        else:
            with open(source, "rb") as f:
                data = f.read()
        obj = loads(data)
    except OSError as exc:
        raise UsageError(f"{option} {os.fspath(source)}: {exc.strerror}") from None
    except ValueError as exc:
        raise UsageError(f"{option} {os.fspath(source)}: not valid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise UsageError(f"{option} {os.fspath(source)}: expected a JSON object ({what})")
    return obj
