"""JSON from untrusted bytes: nesting too deep for the parser is malformed JSON, a ValueError
like any other, not a RecursionError that escapes every ``except ValueError``."""

from __future__ import annotations

import json

TYPE_CHECKING = False  # typing is for checkers: importing it would slow `ocikit run`
if TYPE_CHECKING:
    from typing import Any


def loads(data: str | bytes, **kw: Any) -> Any:
    """``json.loads``, with too-deep nesting raised as ValueError."""
    try:
        return json.loads(data, **kw)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
