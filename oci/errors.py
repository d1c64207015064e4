"""One exception hierarchy for everything ocikit raises on purpose.

Every message names the file, digest, entry or field at fault, so the CLI can
print it as a single line.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is for checkers: importing it would slow `ocikit run`
if TYPE_CHECKING:
    from typing import Callable

# Control characters (C0, DEL, C1) from names in hostile input must not reach a terminal
# raw: a newline would forge a second message line, an escape sequence rewrite the screen.
_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))}


def one_line(text: str) -> str:
    """``text`` safe to print as one line: control characters shown as ``\\xNN``."""
    return text.translate(_CONTROLS)


def _log_warning(message: str) -> None:
    import logging

    logging.getLogger("ocikit").warning(message)


_warning_sink = _log_warning


def warn(message: str) -> None:
    """Report a warning (the work goes on). Library code never prints: the warning goes to
    the ``ocikit`` logger, or to the sink the command line sets (one stderr line)."""
    _warning_sink(message)


def set_warning_sink(sink: "Callable[[str], None]") -> None:
    """Send every warning to ``sink`` from now on (the command line sets its printer)."""
    global _warning_sink
    _warning_sink = sink


# The exit status of a failed command (README, "Exit codes"); each error class has one.
EXIT_FAILURE = 1  # invalid or corrupt content, a failed check or operation
EXIT_USAGE = 2  # bad arguments or options
EXIT_NOT_FOUND = 3  # a file, directory, layout, tag or blob that was named or needed is absent
EXIT_INTERNAL = 70  # a bug in ocikit (an unexpected exception)
EXIT_INTERRUPTED = 130  # SIGINT (Ctrl-C)


class OCIError(Exception):
    """Base of every error ocikit raises deliberately."""

    exit_code = EXIT_FAILURE

    def within(self, where: str) -> "OCIError":
        """The same error, its message prefixed with where it happened (a file, a blob)."""
        return type(self)(f"{where}: {self}")


def failure_text(exc: BaseException) -> str:
    """What went wrong, in words, for an exception a forked process reports to its parent: an
    OCIError's message, an OSError's reason with the file it names, else its type and text."""
    if isinstance(exc, OCIError):
        return str(exc)
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename and str(exc.filename) not in str(exc.strerror) else ""
        return f"{where}{exc.strerror or exc}"
    return f"{type(exc).__name__}: {exc}"


class UsageError(OCIError):
    """The caller asked for something malformed (bad reference, bad option value)."""

    exit_code = EXIT_USAGE


class NotFoundError(OCIError):
    """Something named or needed does not exist: a file, a directory, a layout, a tag, a blob."""

    exit_code = EXIT_NOT_FOUND


class InvalidDigestError(OCIError):
    """A digest string does not follow the OCI digest grammar or names an unknown algorithm."""


class DigestMismatchError(OCIError):
    """Bytes read do not hash to the digest (or length) they were addressed by."""


class BlobNotFoundError(NotFoundError):
    """A blob referenced by digest is absent from the layout."""


class InvalidDocumentError(OCIError):
    """A JSON document (manifest, index, config, ...) is malformed or violates the spec."""


class LayoutError(OCIError):
    """A directory is not a usable OCI image layout."""


class TagNotFoundError(NotFoundError):
    """A tag (org.opencontainers.image.ref.name) is not present in index.json."""


class LayoutNotFoundError(NotFoundError, LayoutError):
    """The directory named as a layout does not exist."""


class LayerError(OCIError):
    """A layer archive is malformed, truncated or hostile."""


class UnsafePathError(LayerError):
    """A layer entry would reach outside its target directory."""


class PlatformError(OCIError):
    """No manifest matches the requested platform."""


class BundleError(OCIError):
    """A runtime bundle is missing, malformed or cannot be honoured."""


class RuntimeSpecError(BundleError):
    """config.json asks for something the runtime cannot do; names the field."""


class ContainerError(OCIError):
    """A container lifecycle operation failed (unknown id, wrong state, ...)."""


class SignatureError(OCIError):
    """Keys or signatures are malformed, unsupported or do not verify."""


class RegistryError(OCIError):
    """A registry refused a request, answered something malformed, or could not be reached."""


class RegistryAuthError(RegistryError):
    """A registry refused the credentials (or their absence) for a scope (401/403)."""


class RegistryNotFoundError(NotFoundError, RegistryError):
    """A registry says the repository, tag, manifest or blob named does not exist (404)."""
