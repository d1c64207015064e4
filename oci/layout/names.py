"""What is where in an image layout directory, and how much JSON ocikit reads from one.

The spec's names (``oci-layout``, ``index.json``, ``blobs/``) and ocikit's own dotfiles, in one
place so that every part of the package (and gc's clean-up) agrees on them.
"""

from __future__ import annotations

LAYOUT_FILE = "oci-layout"
INDEX_FILE = "index.json"
BLOBS_DIR = "blobs"
#: Where ocikit writes blobs and replaced files before renaming them into place; removed when empty.
TMP_DIR = ".ocikit-tmp"
#: ocikit's cache of which blobs are referrers (see referrers.py); other tools ignore dotfiles.
REFERRERS_FILE = ".ocikit-referrers.json"
#: JSON documents larger than this are refused rather than read into memory.
MAX_JSON_SIZE = 64 << 20
