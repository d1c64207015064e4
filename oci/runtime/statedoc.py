"""The runtime-spec state document (runtime.md "State"), as ``state`` prints it and hooks
receive it on their standard input: one home for its shape and the spec version."""

from __future__ import annotations

TYPE_CHECKING = False  # typing is for checkers: importing it would slow every container's start
if TYPE_CHECKING:
    from typing import Any

OCI_VERSION = "1.2.0"


def state_document(cid: str, status: str, bundle: str, annotations: "dict[str, str] | None",
                   pid: int | None = None) -> "dict[str, Any]":
    """The state of container ``cid``; ``pid`` only while it has a process (created,
    running, paused)."""
    doc: dict[str, Any] = {"ociVersion": OCI_VERSION, "id": cid, "status": status}
    if pid is not None:
        doc["pid"] = pid
    doc["bundle"] = bundle
    doc["annotations"] = annotations or {}
    return doc
