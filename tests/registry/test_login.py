"""ocikit login and logout against real registries: htpasswd Basic over verified TLS and a
token service; credentials checked before they are stored, never shown; skopeo's auth
file and ours read by both."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest

from conftest import assert_one_line_error, run_ocikit
from imagebuilder import build_image


@pytest.fixture
def image(tmp_path: Path) -> str:
    build_image(tmp_path / "src", "v1", layers=[{"f": b"login test\n"}])
    return f"{tmp_path / 'src'}:v1"


def _tls(server, authfile: Path) -> list[str]:
    return ["--authfile", str(authfile), "--cert-dir", str(server.cert_dir)]


def _login(server, authfile: Path, user: str, password: str, *extra: str):
    return run_ocikit("login", server.host, "-u", user, "--password-stdin", "--authfile", str(authfile), *extra,
                      input=f"{password}\n".encode())


def _entry(authfile: Path, host: str) -> str:
    return base64.b64decode(json.loads(authfile.read_text())["auths"][host]["auth"]).decode()


def test_login_stores_checked_credentials_that_copy_then_uses(tls_registry, image, tmp_path: Path) -> None:
    authfile = tmp_path / "auth.json"
    res = _login(tls_registry, authfile, tls_registry.username, tls_registry.password,
                 "--cert-dir", str(tls_registry.cert_dir))
    assert res.code == 0, res.stderr
    assert tls_registry.password not in res.stdout + res.stderr
    assert stat.S_IMODE(authfile.stat().st_mode) == 0o600
    assert _entry(authfile, tls_registry.host) == tls_registry.creds
    res = run_ocikit("copy", image, tls_registry.ref("login/app", "v1"), *_tls(tls_registry, authfile))
    assert res.code == 0, res.stderr


@pytest.mark.parametrize("how", ["stdin", "argument"])
def test_a_wrong_password_fails_in_one_line_stores_nothing_and_is_never_shown(tls_registry, tmp_path: Path,
                                                                           how: str) -> None:
    authfile = tmp_path / "auth.json"
    wrong = "wrong-Pa55word-xyz"
    if how == "stdin":
        res = _login(tls_registry, authfile, tls_registry.username, wrong, "--cert-dir", str(tls_registry.cert_dir))
        assert_one_line_error(res, tls_registry.host, "refused", "401")
    else:
        res = run_ocikit("--debug", "login", tls_registry.host, "-u", tls_registry.username, "-p", wrong,
                         *_tls(tls_registry, authfile))
        assert res.code != 0
        assert "process listings" in res.stderr
        assert "Traceback" in res.stderr  # --debug shows where it failed, and still not the password
    assert wrong not in res.stdout + res.stderr
    assert not authfile.exists()


def test_a_password_given_as_an_argument_warns_that_it_shows_in_process_listings(tls_registry, tmp_path: Path) -> None:
    res = run_ocikit("login", tls_registry.host, "-u", tls_registry.username, "-p", tls_registry.password,
                     *_tls(tls_registry, tmp_path / "auth.json"))
    assert res.code == 0, res.stderr
    assert "process listings" in res.stderr and "--password-stdin" in res.stderr
    assert tls_registry.password not in res.stdout + res.stderr


def test_logout_forgets_and_the_next_copy_is_refused_naming_registry_and_scope(tls_registry, image,
                                                                             tmp_path: Path) -> None:
    authfile = tmp_path / "auth.json"
    assert _login(tls_registry, authfile, tls_registry.username, tls_registry.password,
                  "--cert-dir", str(tls_registry.cert_dir)).code == 0
    assert run_ocikit("copy", image, tls_registry.ref("logout/app", "v1"), *_tls(tls_registry, authfile)).code == 0
    res = run_ocikit("logout", tls_registry.host, "--authfile", str(authfile))
    assert res.code == 0, res.stderr
    assert tls_registry.host not in json.loads(authfile.read_text()).get("auths", {})
    res = run_ocikit("copy", tls_registry.ref("logout/app", "v1"), f"{tmp_path / 'back'}:v1",
                     *_tls(tls_registry, authfile))
    assert_one_line_error(res, tls_registry.host, "repository:logout/app:pull", "401")
    assert not (tmp_path / "back").exists()


def test_logout_of_a_registry_never_logged_in_to_is_an_error(tmp_path: Path) -> None:
    res = run_ocikit("logout", "127.0.0.1:1", "--authfile", str(tmp_path / "auth.json"))
    assert_one_line_error(res, "not logged in to 127.0.0.1:1")


def test_logout_all_forgets_every_registry_and_keeps_the_rest_of_the_file(tmp_path: Path) -> None:
    authfile = tmp_path / "auth.json"
    entry = {"auth": base64.b64encode(b"u:p").decode()}
    authfile.write_text(json.dumps({"auths": {"a.example": entry, "b.example:5000": entry},
                                    "credHelpers": {"c.example": "none"}}))
    res = run_ocikit("logout", "--all", "--authfile", str(authfile))
    assert res.code == 0, res.stderr
    assert json.loads(authfile.read_text()) == {"auths": {}, "credHelpers": {"c.example": "none"}}


def test_login_with_a_token_service_then_push_without_creds(token_registry, image, tmp_path: Path) -> None:
    authfile = tmp_path / "auth.json"
    res = _login(token_registry, authfile, "alice", "alice-secret", "--tls-verify=false")
    assert res.code == 0, res.stderr
    assert any(r.username == "alice" and r.creds_given for r in token_registry.token_server.requests)
    res = run_ocikit("copy", image, token_registry.ref("tokens/app", "v1"), "--authfile", str(authfile),
                     "--tls-verify=false")
    assert res.code == 0, res.stderr


def test_login_with_a_token_service_refuses_a_wrong_password(token_registry, tmp_path: Path) -> None:
    authfile = tmp_path / "auth.json"
    res = _login(token_registry, authfile, "alice", "not-alice-secret", "--tls-verify=false")
    assert_one_line_error(res, token_registry.host, "token service refused")
    assert "not-alice-secret" not in res.stdout + res.stderr
    assert not authfile.exists()


def test_skopeo_reads_what_ocikit_login_wrote(tls_registry, image, skopeo, tmp_path: Path) -> None:
    authfile = tmp_path / "auth.json"
    assert _login(tls_registry, authfile, tls_registry.username, tls_registry.password,
                  "--cert-dir", str(tls_registry.cert_dir)).code == 0
    assert run_ocikit("copy", image, tls_registry.ref("interop/ours", "v1"), *_tls(tls_registry, authfile)).code == 0
    res = skopeo("list-tags", "--authfile", str(authfile), "--cert-dir", str(tls_registry.cert_dir),
                 f"docker://{tls_registry.host}/interop/ours")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["Tags"] == ["v1"]


def test_ocikit_reads_what_skopeo_login_wrote(tls_registry, image, skopeo, tmp_path: Path) -> None:
    authfile = tmp_path / "skopeo-auth.json"
    res = skopeo("login", "--authfile", str(authfile), "--cert-dir", str(tls_registry.cert_dir),
                 "-u", tls_registry.username, "-p", tls_registry.password, tls_registry.host)
    assert res.returncode == 0, res.stderr
    res = run_ocikit("copy", image, tls_registry.ref("interop/theirs", "v1"), *_tls(tls_registry, authfile))
    assert res.code == 0, res.stderr
    res = run_ocikit("ls", f"docker://{tls_registry.host}/interop/theirs", *_tls(tls_registry, authfile))
    assert res.stdout.split() == ["v1"]


def test_after_logout_from_a_token_service_a_pull_is_refused_as_anonymous(token_registry, image,
                                                                           tmp_path: Path) -> None:
    authfile = tmp_path / "auth.json"
    assert _login(token_registry, authfile, "alice", "alice-secret", "--tls-verify=false").code == 0
    plain = ["--authfile", str(authfile), "--tls-verify=false"]
    assert run_ocikit("copy", image, token_registry.ref("tokens/private", "v1"), *plain).code == 0
    assert run_ocikit("logout", token_registry.host, "--authfile", str(authfile)).code == 0
    res = run_ocikit("copy", token_registry.ref("tokens/private", "v1"), f"{tmp_path / 'back'}:v1", *plain)
    assert_one_line_error(res, token_registry.host, "repository:tokens/private:pull", "401",
                          "without credentials (log in")


def _on_a_terminal(args: list[str], answers: list[tuple[bytes, bytes]]) -> tuple[int, bytes]:
    """Run ocikit with a terminal of its own; when its output shows each prompt, type the answer."""
    import os
    import pty
    import select
    import sys

    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        os.execv(sys.executable, [sys.executable, "-m", "oci", *args])
    seen = b""
    pending = list(answers)
    while True:
        ready, _, _ = select.select([fd], [], [], 30)
        if not ready:
            break
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
        if pending and pending[0][0] in seen:
            os.write(fd, pending.pop(0)[1] + b"\n")
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), seen


def test_login_asks_for_the_password_on_a_terminal_without_echoing_it(tls_registry, tmp_path: Path) -> None:
    authfile = tmp_path / "auth.json"
    code, shown = _on_a_terminal(["login", tls_registry.host, "-u", tls_registry.username, *_tls(tls_registry, authfile)],
                                 [(b"Password", tls_registry.password.encode())])
    assert code == 0, shown
    assert tls_registry.password.encode() not in shown
    assert _entry(authfile, tls_registry.host) == tls_registry.creds


def test_a_wrong_password_in_creds_is_not_shown_even_with_debug(tls_registry, image, tmp_path: Path) -> None:
    wrong = "creds-Wr0ng-secret"
    res = run_ocikit("--debug", "copy", image, tls_registry.ref("creds/app", "v1"), "--creds",
                     f"{tls_registry.username}:{wrong}", "--cert-dir", str(tls_registry.cert_dir),
                     "--authfile", str(tmp_path / "none.json"))
    assert res.code == 1 and "refused for these credentials" in res.stderr
    assert wrong not in res.stdout + res.stderr
