"""The runtime-spec features document (features.md): what ocikit's runtime accepts in
config.json, stated from the tables the runtime itself checks configs against."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

OCI_VERSION_MIN = "1.0.0"


def features() -> dict[str, Any]:
    """The features document ``ocikit features`` prints.

    Only what ocikit implements: the seccomp architectures are those the installed libseccomp
    knows (loaded here, not at start-up of other commands), ``seccomp.enabled`` is false
    without it; AppArmor, SELinux, Intel RDT, id-mapped mounts and the systemd cgroup
    manager are not implemented.
    """
    from . import seccomp
    from .rootfs import _FLAGS, _PROPAGATION
    from .spec import CAPABILITIES, HOOK_KINDS, NAMESPACES
    from .statedoc import OCI_VERSION

    doc: dict[str, Any] = {
        "ociVersionMin": OCI_VERSION_MIN,
        "ociVersionMax": OCI_VERSION,
        "hooks": list(HOOK_KINDS),
        "mountOptions": sorted({*_FLAGS, *_PROPAGATION, "defaults"}),
        "linux": {
            "namespaces": sorted(NAMESPACES),
            "capabilities": list(CAPABILITIES),
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False, "rdma": True},
            "seccomp": _seccomp(seccomp),
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
            "intelRdt": {"enabled": False},
            "mountExtensions": {"idmap": {"enabled": False}},
        },
        "annotations": {},
    }
    from .. import __version__

    doc["annotations"]["org.ocikit.version"] = __version__
    return doc


def _seccomp(seccomp: Any) -> dict[str, Any]:
    from ..errors import RuntimeSpecError

    try:
        lib = seccomp._libseccomp()
    except RuntimeSpecError:
        return {"enabled": False}
    archs = sorted(a for a in seccomp.ARCHES if lib.seccomp_arch_resolve_name(a[len("SCMP_ARCH_"):].lower().encode()))
    return {
        "enabled": True,
        "actions": sorted(a for a in seccomp.ACTIONS if a != "SCMP_ACT_NOTIFY"),
        "operators": sorted(seccomp.OPS),
        "archs": archs,
        "knownFlags": sorted(seccomp.FLAGS),
        "supportedFlags": seccomp.supported_flags(),
    }
