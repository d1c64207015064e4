"""A typer-free entry for ``ocikit run``: the command's start-up cost is most of a short run.

Accepts exactly ``run BUNDLE [--id ID] [--root DIR]`` where BUNDLE holds a config.json;
anything else (runc's ``run [--bundle B] ID`` among them) goes to the full command line.
Prints errors as the CLI edge does.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing is for checkers: importing it would slow every container's start
if TYPE_CHECKING:
    from typing import NoReturn


def parse_run_args(argv: list[str]) -> tuple[str, str | None, str | None] | None:
    """(bundle, id, root) when ``argv`` (after 'run') is a plain run invocation, else None."""
    bundle = cid = root = None
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("--id", "--root") and i + 1 < len(argv):
            if a == "--id":
                cid = argv[i + 1]
            else:
                root = argv[i + 1]
            i += 2
        elif a.startswith("--id="):
            cid, i = a[5:], i + 1
        elif a.startswith("--root="):
            root, i = a[7:], i + 1
        elif a.startswith("-") or bundle is not None:
            return None
        else:
            bundle, i = a, i + 1
    return None if bundle is None else (bundle, cid, root)


def _asks_for_cgroup(bundle: str) -> bool:
    """Whether the bundle's config.json seems to want a cgroup (a cheap look at its bytes:
    a wrong guess costs only a warm-up, or its absence)."""
    try:
        with open(os.path.join(bundle, "config.json"), "rb") as f:
            raw = f.read()
    except OSError:
        return False
    return b'"resources"' in raw or b'"cgroupsPath"' in raw


def _exit(code: int) -> NoReturn:
    """Flush our output and end the process without the interpreter's teardown.

    Module clean-up and a final collection would add several milliseconds to every
    short container's run; nothing the run path opens needs them.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(argv: list[str]) -> None:
    """Run ``ocikit run`` without the full CLI when the arguments allow; exits the process."""
    parsed = parse_run_args(argv)
    if parsed is None or not os.path.isfile(os.path.join(parsed[0], "config.json")):
        from .app import main as full

        full(["run", *argv])
        return
    bundle, cid, root = parsed
    if os.geteuid() == 0 or _asks_for_cgroup(bundle):  # root makes a cgroup for every container
        from ..runtime.cgroups import warm_up

        warm_up()
    from ..errors import OCIError, set_warning_sink
    from .output import error_line, print_warning

    set_warning_sink(print_warning)
    from ..runtime.container import run

    try:
        code = run(bundle, cid, root or None)
    except OCIError as exc:
        print(error_line(exc), file=sys.stderr)
        _exit(exc.exit_code)
    except OSError as exc:
        print(error_line(exc), file=sys.stderr)
        _exit(1)
    except KeyboardInterrupt:
        _exit(130)
    _exit(code)


if __name__ == "__main__":
    main(sys.argv[1:])
