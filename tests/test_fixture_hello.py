"""fixtures/rootfs/bin/hello is what fixtures/make_hello.py generates, a valid static ELF that prints the greeting."""

from __future__ import annotations

import importlib.util
import re
import shutil
import stat
import subprocess
import sys

import pytest

from conftest import FIXTURES

GREETING = "Hello from an ocikit container!"
HELLO = FIXTURES / "rootfs/bin/hello"


def load_generator():
    spec = importlib.util.spec_from_file_location("make_hello", FIXTURES / "make_hello.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_hello = load_generator()


def test_the_committed_hello_is_the_generators_output():
    # The repository ships the x86_64 build; on another machine the README has you regenerate it for that one.
    accepted = {make_hello.build("x86_64")}
    if make_hello.host_arch() in make_hello.ARCHES:
        accepted.add(make_hello.build(make_hello.host_arch()))
    assert HELLO.read_bytes() in accepted, "fixtures/rootfs/bin/hello differs from what fixtures/make_hello.py writes: regenerate it"
    assert stat.S_IMODE(HELLO.stat().st_mode) == 0o755
    assert make_hello.MESSAGE.decode().strip() == GREETING


def test_the_generator_writes_an_executable_file(tmp_path):
    out = tmp_path / "hello"
    proc = subprocess.run([sys.executable, str(FIXTURES / "make_hello.py"), "--arch", "aarch64", "-o", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes() == make_hello.build("aarch64")
    assert stat.S_IMODE(out.stat().st_mode) == 0o755


def test_the_generator_refuses_an_unknown_architecture(tmp_path):
    proc = subprocess.run([sys.executable, str(FIXTURES / "make_hello.py"), "--arch", "sparc", "-o", str(tmp_path / "x")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "unsupported architecture 'sparc'" in proc.stderr
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("arch, machine", [("x86_64", "Advanced Micro Devices X86-64"), ("aarch64", "AArch64")])
def test_readelf_accepts_the_executable(tmp_path, arch, machine):
    if shutil.which("readelf") is None:
        pytest.skip("readelf is not installed (Debian's binutils)")
    path = tmp_path / "hello"
    path.write_bytes(make_hello.build(arch))
    proc = subprocess.run(["readelf", "--wide", "-h", "-l", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert re.search(r"Class:\s+ELF64\n", proc.stdout)
    assert re.search(r"Type:\s+EXEC \(Executable file\)\n", proc.stdout)
    assert re.search(rf"Machine:\s+{re.escape(machine)}\n", proc.stdout)
    assert re.search(r"Entry point address:\s+0x400078\n", proc.stdout)
    loads = re.findall(r"^\s+LOAD\s+0x0+ 0x0+400000 0x0+400000 (0x[0-9a-f]+) (0x[0-9a-f]+) R E", proc.stdout, re.M)
    size = path.stat().st_size
    assert [(int(filesz, 16), int(memsz, 16)) for filesz, memsz in loads] == [(size, size)], proc.stdout


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_the_executable_prints_the_greeting(tmp_path, arch):
    path = tmp_path / "hello"
    path.write_bytes(make_hello.build(arch))
    path.chmod(0o755)
    if make_hello.host_arch() == arch:
        argv = [str(path)]
    elif shutil.which(f"qemu-{arch}-static"):
        argv = [f"qemu-{arch}-static", str(path)]
    else:
        pytest.skip(f"not a {arch} machine and qemu-{arch}-static is not installed (Debian's qemu-user-static)")
    proc = subprocess.run(argv, capture_output=True, env={}, timeout=30)
    assert proc.returncode == 0
    assert proc.stdout == (GREETING + "\n").encode() and proc.stderr == b""
