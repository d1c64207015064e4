"""The ``ocikit`` command's entry point, outside the ``oci`` package on purpose.

ocikit's library is imported as ``oci``, which is also the import name of Oracle's cloud
SDK. When both are installed in one environment, ``import oci`` may give the other
package: this module checks that it got ocikit's before handing over, and otherwise says
so in one line instead of failing with an ImportError from deep inside.
"""

from __future__ import annotations

import sys

EXIT_FAILURE = 1  # oci.errors.EXIT_FAILURE, not importable when "oci" is another package
_ADVICE = ("install ocikit in an environment without it, such as a virtual environment of its own")


def _fail(message: str) -> None:
    print(f"ocikit: error: {message}", file=sys.stderr)
    sys.exit(EXIT_FAILURE)


def main() -> None:
    """Run ocikit's command line, if ``import oci`` gives ocikit's package."""
    try:
        import oci
    except Exception as exc:  # another package of that name may fail to import at all
        _fail(f"importing the Python package 'oci' failed ({type(exc).__name__}: {exc}); if another package "
              f"is installed under that name (Oracle's OCI SDK is imported as 'oci' too), {_ADVICE}")
    if getattr(oci, "__ocikit__", False) is not True:
        where = getattr(oci, "__file__", None) or ", ".join(getattr(oci, "__path__", [])) or "?"
        _fail(f"the Python package 'oci' at {where} is not ocikit's but another package of that name "
              f"(Oracle's OCI SDK is imported as 'oci' too); {_ADVICE}")
    from oci.cli import main as run

    run()


if __name__ == "__main__":
    main()
