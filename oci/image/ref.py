"""Image references: the one grammar every command and library entry point reads.

==========================================  =============================================
``LAYOUT[:TAG]``, ``LAYOUT@DIGEST``           an OCI image layout directory (default tag
``oci:LAYOUT[:TAG]``, ``oci:LAYOUT@DIGEST``   ``latest``)
``oci-archive:FILE[:TAG]``, ``…@DIGEST``      a tar of an OCI image layout (skopeo's)
``docker-archive:FILE[:NAME[:TAG]]``          what ``docker save`` writes; ``FILE:@N``
                                              is its N-th image
``docker://[HOST[:PORT]/]REPO[:TAG|@DIGEST]`` an image in a registry (default tag
                                              ``latest``; ``docker.io`` when no HOST)
==========================================  =============================================

Where the colons go:

1. A text that starts with ``/``, ``./`` or ``../`` is a layout path, whatever follows.
2. Otherwise the text before the first ``:`` names a transport when it looks like one
   (``[a-z][a-z0-9-]*``: lowercase letters, digits and dashes). It must be one of the
   above, unless the text names a directory that exists (``images:v1`` with ``./images``
   there is that layout): ``dir:x`` and a new ``images:v1`` are refused, so a mistyped
   transport cannot create a directory. Write ``./images:v1`` (or ``oci:images:v1``).
3. In a layout or oci-archive reference, ``@`` followed by a digest ends the path;
   otherwise the last ``:`` starts the tag when what follows is a valid tag without ``/``.
   A path that contains a colon is therefore written with its tag: ``./my:dir:latest`` is
   layout ``./my:dir``, tag ``latest``.
4. In ``docker-archive:``, the file name ends at the first ``:`` (an image NAME has colons
   of its own), as in skopeo.
5. A text that reads as docker's ``HOST[:PORT]/REPO`` (a first segment that is
   ``localhost``, or has a dot or a port) without ``docker://`` is refused unless that first
   directory exists, so ``127.0.0.1:5000/app:v1`` cannot quietly become a directory.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Union

from ..digest import Digest
from ..errors import InvalidDigestError, UsageError
from ..layout import validate_tag

DEFAULT_TAG = "latest"
LAYOUT = "oci"
OCI_ARCHIVE = "oci-archive"
DOCKER_ARCHIVE = "docker-archive"
REGISTRY = "docker"
#: The transports ocikit reads and writes, as they are written before the colon.
SUPPORTED = (LAYOUT, OCI_ARCHIVE, DOCKER_ARCHIVE)

_TRANSPORT = re.compile(r"^([a-z][a-z0-9-]*):")
# The docker reference grammar (distribution/reference), enough to normalize a name as skopeo does.
_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_DOMAIN = re.compile(r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?$")
_DOCKER_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
DOCKER_HUB = "docker.io"


@dataclass(frozen=True)
class LayoutRef:
    """An image in an OCI image layout directory: by tag, by digest, or (neither) the
    default tag, or the whole layout for commands that take one."""

    path: Path
    tag: str | None = None
    digest: str | None = None

    transport = LAYOUT

    def __str__(self) -> str:
        if self.digest:
            return f"{self.path}@{self.digest}"
        return f"{self.path}:{self.tag}" if self.tag else str(self.path)


@dataclass(frozen=True)
class OCIArchiveRef:
    """An image in an OCI archive: a tar of an OCI image layout."""

    path: Path
    tag: str | None = None
    digest: str | None = None

    transport = OCI_ARCHIVE

    def __str__(self) -> str:
        return f"{OCI_ARCHIVE}:{LayoutRef(self.path, self.tag, self.digest)}"


@dataclass(frozen=True)
class DockerArchiveRef:
    """An image in a docker archive (``docker save``): ``name`` is NAME[:TAG], ``@N`` for
    the N-th image, or None for the archive's only one."""

    path: Path
    name: str | None = None

    transport = DOCKER_ARCHIVE

    def __str__(self) -> str:
        return f"{DOCKER_ARCHIVE}:{self.path}{':' + self.name if self.name else ''}"


@dataclass(frozen=True)
class RegistryRef:
    """An image in a registry, normalized as skopeo reads ``docker://`` (``busybox`` is
    ``docker.io/library/busybox:latest``)."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    transport = REGISTRY

    def __str__(self) -> str:
        end = f"@{self.digest}" if self.digest else f":{self.tag}"
        return f"docker://{self.registry}/{self.repository}{end}"


Ref = Union[LayoutRef, OCIArchiveRef, DockerArchiveRef, RegistryRef]


def parse(text: str) -> Ref:
    """Read an image reference (see the module docstring); UsageError when it is malformed
    or names a transport ocikit does not know."""
    if not text:
        raise UsageError("empty image reference")
    explicit_path = text.startswith(("/", "./", "../"))
    m = None if explicit_path else _TRANSPORT.match(text)
    if m is None:
        if not explicit_path and _registry_spelling(text) and not os.path.isdir(text.partition("/")[0]):
            raise UsageError(f"{text!r} looks like an image in a registry: write docker://{text} "
                             f"(a new layout whose path starts with a host name is written ./{text})")
        return _layout(text, text)
    transport, rest = m.group(1), text[m.end():]
    if transport == LAYOUT:
        return _layout(rest, text)
    if transport == OCI_ARCHIVE:
        ref = _layout(rest, text)
        return OCIArchiveRef(ref.path, ref.tag, ref.digest)
    if transport == DOCKER_ARCHIVE:
        return _docker_archive(rest, text)
    if transport == REGISTRY:
        return _registry(rest, text)
    with contextlib.suppress(UsageError):
        existing = _layout(text, text)
        if os.path.isdir(existing.path):  # a layout that is there, named without ./ (images:v1)
            return existing
    if _registry_spelling(text):
        raise UsageError(f"{text!r} looks like an image in a registry: write docker://{text} "
                         f"(a layout path is written ./{text})")
    raise UsageError(f"{text!r}: unknown transport {transport + ':'!r} (ocikit takes "
                     f"{', '.join(t + ':' for t in SUPPORTED)} and docker://); "
                     f"a layout path is written ./{text}")


def _registry_spelling(text: str) -> bool:
    """Whether ``text`` reads as docker's ``HOST[:PORT]/REPO...`` without ``docker://``: a first
    segment that is ``localhost`` or has a dot or a port, as docker tells a host from a name."""
    head, slash, _ = text.partition("/")
    return bool(slash) and _is_host(head)


def _is_host(text: str) -> bool:
    """``localhost[:PORT]``, ``HOST.DOMAIN[:PORT]`` or ``HOST:PORT``, by docker's rule."""
    name, colon, port = text.partition(":")
    if colon and not port.isdigit():
        return False
    return bool(_DOMAIN.match(text)) and (name == "localhost" or "." in name or bool(colon))


def _layout(rest: str, text: str) -> LayoutRef:
    """``PATH[:TAG]`` or ``PATH@DIGEST`` (rule 3)."""
    if not rest:
        raise UsageError(f"{text!r}: no path in the image reference")
    path, at, digest = rest.rpartition("@")
    if at and path and ":" in digest:
        try:
            Digest.parse(digest)
        except InvalidDigestError as exc:
            raise UsageError(f"{text!r}: {exc}") from None
        return LayoutRef(Path(path), None, digest)
    path, colon, tag = rest.rpartition(":")
    if colon and path and tag and "/" not in tag:
        try:
            validate_tag(tag)
        except UsageError:
            raise UsageError(f"invalid tag {tag!r} in reference {text!r}") from None
        return LayoutRef(Path(path), tag, None)
    if rest.endswith(":") and rest[:-1]:
        raise UsageError(f"{text!r}: empty tag after ':' (give LAYOUT or LAYOUT:TAG)")
    return LayoutRef(Path(rest), None, None)


def _docker_archive(rest: str, text: str) -> DockerArchiveRef:
    """``FILE[:NAME[:TAG]]`` or ``FILE:@N`` (rule 4)."""
    path, colon, name = rest.partition(":")
    if not path:
        raise UsageError(f"{text!r}: expected docker-archive:FILE[:NAME[:TAG]]")
    return DockerArchiveRef(Path(path), name if colon and name else None)


def _registry(rest: str, text: str) -> RegistryRef:
    """``//[HOST[:PORT]/]REPO[:TAG|@DIGEST]``, normalized as skopeo's docker transport does."""
    if not rest.startswith("//") or len(rest) == 2:
        raise UsageError(f"{text!r}: expected docker://[HOST[:PORT]/]REPOSITORY[:TAG|@DIGEST]")
    name, at, digest = rest[2:].partition("@")
    if at:
        try:
            Digest.parse(digest)
        except InvalidDigestError as exc:
            raise UsageError(f"{text!r}: {exc}") from None
    head, slash, tail = name.partition("/")
    # docker://HOST/ and docker://HOST:PORT (docker would read the latter as docker.io's
    # library/HOST with tag PORT; a name with a dot or localhost is taken for the host).
    host, colon, port = head.partition(":")
    if (slash and not tail) or (not slash and colon and port.isdigit() and ("." in host or host == "localhost")):
        raise UsageError(f"{text!r} names a registry but no repository: write docker://{head}/REPOSITORY[:TAG]")
    if slash and ("." in head or ":" in head or head == "localhost"):
        registry, path = head, tail
    else:
        registry, path = DOCKER_HUB, name
    if registry == "index.docker.io":
        registry = DOCKER_HUB
    last = path.rsplit("/", 1)[-1]
    tag: str | None = None
    if ":" in last:
        path, _, tag = path.rpartition(":")
        if not _DOCKER_TAG.match(tag):
            raise UsageError(f"{text!r}: invalid tag {tag!r}")
    if registry == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    if not _DOMAIN.match(registry):
        raise UsageError(f"{text!r}: {registry!r} is not a registry HOST[:PORT]")
    if not path or not all(_COMPONENT.match(c) for c in path.split("/")):
        why = "repository names are lowercase" if path != path.lower() else (
            "each part of a repository name is lowercase letters and digits, separated by '.', '_', '__' or '-'; "
            "a tag follows one ':'")
        raise UsageError(f"{text!r}: not a valid repository name {path!r} ({why})")
    if tag and at:
        raise UsageError(f"{text!r}: give a tag or a digest, not both")
    return RegistryRef(registry, path, tag if tag or at else DEFAULT_TAG, digest if at else None)


def absolute(ref: Ref) -> Ref:
    """``ref`` with its path made absolute (to be read again from another directory)."""
    if isinstance(ref, RegistryRef):
        return ref
    return replace(ref, path=Path(os.path.abspath(ref.path)))


def as_ref(ref: "str | Ref") -> Ref:
    """``ref`` parsed when it is text (a Ref is returned as it is)."""
    return parse(ref) if isinstance(ref, str) else ref
