"""The layout's temporary directory under concurrency: another command removes it whenever
it finds it empty, at any moment of a writer's creating a temporary in it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from oci.layout import TMP_DIR, Layout


def test_a_temporary_directory_removed_between_its_mkdir_and_open_is_made_again(tmp_path: Path,
                                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    layout = Layout.init(tmp_path / "l")
    real_mkdir = os.mkdir
    raced: list[str] = []

    def mkdir_then_lose_it(path, mode=0o777, *, dir_fd=None):  # type: ignore[no-untyped-def]
        try:
            real_mkdir(path, mode, dir_fd=dir_fd)
        finally:
            if path == TMP_DIR and not raced:
                raced.append(path)
                os.rmdir(path, dir_fd=dir_fd)  # as another command does that found it empty

    monkeypatch.setattr(os, "mkdir", mkdir_then_lose_it)
    digest, _ = layout.put_blob(b"written all the same")
    assert raced
    assert layout.read_blob(digest) == b"written all the same"
    assert not (tmp_path / "l" / TMP_DIR).exists()


def test_a_temporary_directory_removed_between_its_open_and_the_create_is_made_again(tmp_path: Path,
                                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    layout = Layout.init(tmp_path / "l")
    real_open = os.open
    raced: list[str] = []

    def open_then_lose_it(path, flags, mode=0o777, *, dir_fd=None):  # type: ignore[no-untyped-def]
        fd = real_open(path, flags, mode, dir_fd=dir_fd)
        if path == TMP_DIR and not raced:
            raced.append(path)
            os.rmdir(path, dir_fd=dir_fd)
        return fd

    monkeypatch.setattr(os, "open", open_then_lose_it)
    digest, _ = layout.put_blob(b"written all the same")
    assert raced
    assert layout.read_blob(digest) == b"written all the same"
