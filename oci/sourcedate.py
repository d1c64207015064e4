"""``SOURCE_DATE_EPOCH`` (reproducible-builds.org): the one rule every command reads it by."""

from __future__ import annotations

import os
from typing import Mapping

from .errors import UsageError

VARIABLE = "SOURCE_DATE_EPOCH"
# The last second an RFC 3339 date-time (four-digit year) can name: 9999-12-31T23:59:59Z.
MAX_EPOCH = 253402300799


def epoch_seconds(value: str | int, what: str = VARIABLE) -> int:
    """``value`` as seconds since the epoch: a non-negative whole number (ASCII digits when
    text) no later than year 9999; otherwise UsageError, one line naming ``what``."""
    text = str(value)
    if not (text.isascii() and text.isdigit()) or int(text) > MAX_EPOCH:
        raise UsageError(f"{what}={text!r}: expected a whole number of seconds from 0 to {MAX_EPOCH}")
    return int(text)


def source_date_epoch(environ: Mapping[str, str] | None = None) -> int | None:
    """``SOURCE_DATE_EPOCH`` from ``environ`` (default: this process's); None when unset or empty."""
    raw = (os.environ if environ is None else environ).get(VARIABLE, "")
    return epoch_seconds(raw) if raw else None
