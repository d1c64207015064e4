"""The OCI platform of the machine this runs on: the kernel's machine name (``uname -m``)
mapped to Go's GOARCH names, as the image-spec asks."""

from __future__ import annotations

import os

from .models import Platform

_MACHINES: dict[str, tuple[str, str | None]] = {
    "x86_64": ("amd64", None),
    "amd64": ("amd64", None),
    "aarch64": ("arm64", "v8"),
    "arm64": ("arm64", "v8"),
    "armv7l": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "armv5tel": ("arm", "v5"),
    "i386": ("386", None),
    "i486": ("386", None),
    "i586": ("386", None),
    "i686": ("386", None),
    "ppc64le": ("ppc64le", None),
    "s390x": ("s390x", None),
    "riscv64": ("riscv64", None),
    "mips64": ("mips64", None),
    "loongarch64": ("loong64", None),
}


def host_platform(machine: str | None = None) -> Platform:
    """The platform this process runs on, in image-spec (GOOS/GOARCH) terms."""
    machine = machine or os.uname().machine
    arch, variant = _MACHINES.get(machine.lower(), (machine.lower(), None))
    # arm64's variant is implied; leave it unset so images without a variant still match.
    if arch == "arm64":
        variant = None
    return Platform(architecture=arch, os="linux", variant=variant)
