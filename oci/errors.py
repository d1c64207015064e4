"""One exception hierarchy for everything ocikit raises on purpose.

Every message names the file, digest, entry or field at fault, so the CLI can
print it as a single line.
"""

from __future__ import annotations

# Control characters (C0, DEL, C1) from names in hostile input must not reach a terminal
# raw: a newline would forge a second message line, an escape sequence rewrite the screen.
_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))}


def one_line(text: str) -> str:
    """``text`` safe to print as one line: control characters shown as ``\\xNN``."""
    return text.translate(_CONTROLS)


def print_warning(message: str) -> None:
    """Print the one stderr line of a warning (the command goes on)."""
    import sys

    print(f"ocikit: warning: {one_line(message)}", file=sys.stderr)


def error_line(exc: OSError | OCIError) -> str:
    """The one line the command line prints for a deliberate error or a failed system call."""
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return one_line(f"ocikit: error: {where}{exc.strerror or exc}")
    return f"ocikit: error: {one_line(str(exc))}"


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
