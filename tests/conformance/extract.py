"""Regenerate the conformance cases in this folder from an image-spec git checkout.

Usage: python3 tests/conformance/extract.py /path/to/image-spec[.git] [REV]
Writes one JSON file per source (a list of {source, note, media_type, document, valid}).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs

HERE = Path(__file__).resolve().parent

MT_DESCRIPTOR = "application/vnd.oci.descriptor.v1+json"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYOUT = "application/vnd.oci.layout.header.v1+json"

# Which validator each Go table runs, keyed by test function name.
GO_TABLES = {
    "TestDescriptor": MT_DESCRIPTOR,
    "TestConfig": MT_CONFIG,
    "TestImageIndex": MT_INDEX,
    "TestImageLayout": MT_LAYOUT,
    "TestManifest": MT_MANIFEST,
    "TestBackwardsCompatibilityImageIndex": MT_INDEX,
    "TestBackwardsCompatibilityManifest": MT_MANIFEST,
    "TestBackwardsCompatibilityConfig": MT_CONFIG,
}
GO_FILES = [
    "schema/descriptor_test.go",
    "schema/config_test.go",
    "schema/imageindex_test.go",
    "schema/imagelayout_test.go",
    "schema/manifest_test.go",
    "schema/backwards_compatibility_test.go",
]
# The backwards-compatibility tests rewrite Docker media types to OCI ones before validating.
DOCKER_TO_OCI = {
    "application/vnd.docker.distribution.manifest.list.v2+json": MT_INDEX,
    "application/vnd.docker.distribution.manifest.v2+json": MT_MANIFEST,
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.docker.container.image.v1+json": MT_CONFIG,
}
# The spec's example test validates every tagged example in these documents.
MARKDOWN_FILES = ["descriptor.md", "manifest.md", "image-index.md", "image-layout.md", "config.md"]

_FUNC = re.compile(r"^func (Test\w+)\(", re.M)
_TOKEN = re.compile(r"(?P<comment>//[^\n]*)|`(?P<raw>[^`]*)`|\bfail:\s*(?P<fail>true|false)")
_FENCE = re.compile(r"^(?P<indent> *)```(?P<info>[^\n]*)\n(?P<body>.*?)^ *```[ \t]*$", re.M | re.S)


def _show(repo: Path, rev: str, path: str) -> str:
    # `git -C` reads a bare mirror and a working checkout alike.
    return subprocess.run(["git", "-C", str(repo), "show", f"{rev}:{path}"], check=True, capture_output=True, text=True).stdout


def go_cases(text: str, path: str) -> list[dict]:
    """Table entries of each known test function: the raw document, its expected verdict, its comment."""
    cases: list[dict] = []
    funcs = list(_FUNC.finditer(text))
    for n, func in enumerate(funcs):
        media_type = GO_TABLES.get(func.group(1))
        if media_type is None:
            continue
        body = text[func.end(): funcs[n + 1].start() if n + 1 < len(funcs) else len(text)]
        comment = ""
        index = 0
        for tok in _TOKEN.finditer(body):
            if tok.group("comment") is not None:
                comment = tok.group("comment")[2:].strip()
            elif tok.group("raw") is not None:
                doc = tok.group("raw")
                if func.group(1).startswith("TestBackwardsCompatibility"):
                    for docker, oci in DOCKER_TO_OCI.items():
                        doc = doc.replace(docker, oci)
                # Entries without a fail field expect success (Go's zero value).
                cases.append({
                    "source": f"{path}:{func.group(1)}[{index}]",
                    "note": comment,
                    "media_type": media_type,
                    "document": doc,
                    "valid": True,
                })
                comment = ""
                index += 1
            elif cases:
                cases[-1]["valid"] = tok.group("fail") == "false"
    return cases


def markdown_cases(text: str, path: str) -> list[dict]:
    """Fenced ```json,title=...&mediatype=...``` examples; every one must validate."""
    cases = []
    for m in _FENCE.finditer(text):
        lang, _, attrs = m.group("info").strip().partition(",")
        media_type = parse_qs(attrs).get("mediatype", [""])[0]
        if not media_type:
            continue
        indent = len(m.group("indent"))
        lines = [line[min(indent, len(line) - len(line.lstrip(" "))):] for line in m.group("body").splitlines()]
        title = parse_qs(attrs).get("title", [""])[0]
        line_no = text.count("\n", 0, m.start()) + 1
        cases.append({
            "source": f"{path}:{line_no}",
            "note": f"example: {title}",
            "media_type": media_type,
            "document": "\n".join(lines) + "\n",
            "valid": True,
        })
    return cases


def main(argv: list[str]) -> int:
    repo = Path(argv[1])
    rev = argv[2] if len(argv) > 2 else "HEAD"
    go = [c for p in GO_FILES for c in go_cases(_show(repo, rev, p), p)]
    md = [c for p in MARKDOWN_FILES for c in markdown_cases(_show(repo, rev, p), p)]
    for name, cases in (("go-tests.json", go), ("markdown-examples.json", md)):
        (HERE / name).write_text(json.dumps(cases, indent=1, ensure_ascii=False) + "\n")
        print(f"{name}: {len(cases)} cases")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
