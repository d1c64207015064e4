"""Run runtime-spec lifecycle hooks with the container state on their stdin."""

from __future__ import annotations

import json
import sys
from typing import Any

from ..errors import ContainerError, warn


def run_hooks(cfg: dict[str, Any], kind: str, state: dict[str, Any], fatal: bool = True) -> None:
    """Run ``hooks.<kind>`` in order; a failing hook raises (``fatal``) or is reported on stderr."""
    hooks = (cfg.get("hooks") or {}).get(kind) or []
    if not hooks:
        return
    import subprocess

    payload = json.dumps(state).encode()
    for i, h in enumerate(hooks):
        env = dict(e.split("=", 1) for e in h.get("env") or [] if "=" in e)
        args = h.get("args") or [h["path"]]
        what = f"hooks.{kind}[{i}] ({h['path']})"
        try:
            proc = subprocess.run(args, executable=h["path"], input=payload, env=env, timeout=h.get("timeout"), stdout=sys.stderr.fileno(), stderr=None)
            problem = f"exited with status {proc.returncode}" if proc.returncode else None
        except subprocess.TimeoutExpired:
            problem = f"timed out after {h['timeout']}s"
        except OSError as exc:
            problem = f"cannot be run: {exc.strerror}"
        if problem:
            if fatal:
                raise ContainerError(f"{what} {problem}")
            warn(f"{what} {problem}")
