"""Registry credentials: the lookup order of podman and skopeo, the auth file format with its
key spellings, credential helpers, login's store and logout's remove, and no leaked secret."""

from __future__ import annotations

import base64
import json
import os
import stat
import sys
from pathlib import Path

import pytest

from oci.errors import OCIError, UsageError
from oci.registry import credentials
from oci.registry.credentials import Credentials, CredentialsError, default_authfile, lookup, parse_creds, remove, store
from oci.registry.options import RegistryOptions

HOST = "reg.example:5000"
SECRET = "s3cr3t-Pa55"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private home: every auth file location points under tmp_path, none exists yet."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var in ("REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "DOCKER_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(credentials, "RUNTIME_AUTHFILE", str(tmp_path / "run" / "{uid}" / "auth.json"))
    return home


def auth(user: str, password: str) -> dict:
    return {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}


def write_json(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


HELPER = r'''#!{python}
import json, os, sys
action = sys.argv[1]
data = sys.stdin.read()
with open(os.environ["FAKE_HELPER_LOG"], "a") as log:
    log.write(json.dumps({{"argv": sys.argv[1:], "stdin": data}}) + "\n")
path = os.environ["FAKE_HELPER_STORE"]
db = json.load(open(path)) if os.path.exists(path) else {{}}
if action == "get":
    if data not in db:
        print("credentials not found in native keychain"); sys.exit(1)
    print(json.dumps({{"ServerURL": data, **db[data]}}))
elif action == "store":
    req = json.loads(data)
    db[req["ServerURL"]] = {{"Username": req["Username"], "Secret": req["Secret"]}}
elif action == "erase":
    if data not in db:
        print("credentials not found in native keychain"); sys.exit(1)
    del db[data]
json.dump(db, open(path, "w"))
'''


class FakeHelper:
    """``docker-credential-fake`` on PATH, backed by a JSON file; logs argv and stdin."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch):
        self.bin = root / "bin"
        self.bin.mkdir()
        self.log = root / "helper.log"
        self.db = root / "helper.json"
        self.install("fake", HELPER.format(python=sys.executable))
        monkeypatch.setenv("PATH", f"{self.bin}{os.pathsep}{os.environ['PATH']}")
        monkeypatch.setenv("FAKE_HELPER_LOG", str(self.log))
        monkeypatch.setenv("FAKE_HELPER_STORE", str(self.db))

    def install(self, name: str, text: str) -> None:
        script = self.bin / f"docker-credential-{name}"
        script.write_text(text)
        script.chmod(0o755)

    def calls(self) -> list[dict]:
        return [json.loads(line) for line in self.log.read_text().splitlines()] if self.log.exists() else []

    def held(self) -> dict:
        return json.loads(self.db.read_text()) if self.db.exists() else {}


@pytest.fixture
def helper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeHelper:
    return FakeHelper(tmp_path, monkeypatch)


# --creds and the search order


def test_creds_option_wins_over_every_auth_file(home, tmp_path):
    f = write_json(tmp_path / "a.json", {"auths": {HOST: auth("file", "x")}})
    got = lookup(HOST, RegistryOptions(creds="cli:pw", authfile=f))
    assert got == Credentials("cli", "pw")


def test_creds_option_user_alone_has_an_empty_password():
    assert parse_creds("user") == Credentials("user", "")


def test_creds_option_without_user_is_a_usage_error_without_the_password():
    with pytest.raises(UsageError) as exc:
        parse_creds(f":{SECRET}")
    assert SECRET not in str(exc.value)


def test_no_auth_file_anywhere_means_anonymous(home):
    assert lookup(HOST, RegistryOptions()) is None


def test_authfile_option_is_the_only_file_read(home, tmp_path, monkeypatch):
    write_json(home / ".config/containers/auth.json", {"auths": {HOST: auth("xdg", "x")}})
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(write_json(tmp_path / "env.json", {"auths": {HOST: auth("env", "x")}})))
    given = write_json(tmp_path / "given.json", {"auths": {}})
    assert lookup(HOST, RegistryOptions(authfile=given)) is None
    assert credentials.authfile_search(RegistryOptions(authfile=given)) == [given]


def test_registry_auth_file_is_the_only_file_read_without_the_option(home, tmp_path, monkeypatch):
    write_json(home / ".config/containers/auth.json", {"auths": {HOST: auth("xdg", "x")}})
    env = write_json(tmp_path / "env.json", {"auths": {HOST: auth("env", "pw")}})
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(env))
    assert lookup(HOST, RegistryOptions()) == Credentials("env", "pw")
    env.write_text('{"auths": {}}')
    assert lookup(HOST, RegistryOptions()) is None


def test_default_search_order(home, tmp_path, monkeypatch):
    runtime = tmp_path / "xdg-run"
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    files = [runtime / "containers/auth.json", tmp_path / "xdg-config/containers/auth.json",
             tmp_path / "docker/config.json", home / ".dockercfg"]
    assert credentials.authfile_search(RegistryOptions()) == files
    write_json(files[3], {f"https://{HOST}/v1/": auth("legacy", "1")})
    assert lookup(HOST, RegistryOptions()) == Credentials("legacy", "1")
    for n, path in reversed(list(enumerate(files[:3]))):
        write_json(path, {"auths": {HOST: auth(f"file{n}", "1")}})
        assert lookup(HOST, RegistryOptions()).username == f"file{n}"


def test_a_file_named_twice_in_the_search_is_read_once(home, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "same"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "same"))
    assert credentials.authfile_search(RegistryOptions())[:2] == [tmp_path / "same/containers/auth.json",
                                                                  home / ".docker/config.json"]


def test_files_without_the_host_are_passed_over(home, monkeypatch):
    write_json(home / ".config/containers/auth.json", {"auths": {"other.example": auth("o", "1")}})
    write_json(home / ".docker/config.json", {"auths": {HOST: auth("docker", "2")}})
    assert lookup(HOST, RegistryOptions()) == Credentials("docker", "2")


def test_without_xdg_runtime_dir_the_runtime_file_is_per_uid_under_run(home, monkeypatch):
    monkeypatch.setattr(credentials, "RUNTIME_AUTHFILE", "/run/containers/{uid}/auth.json")
    assert default_authfile() == Path(f"/run/containers/{os.getuid()}/auth.json")
    assert credentials.authfile_search(RegistryOptions())[0] == default_authfile()


def test_default_authfile_prefers_registry_auth_file_then_xdg_runtime_dir(home, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert default_authfile() == tmp_path / "containers/auth.json"
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(tmp_path / "x.json"))
    assert default_authfile() == tmp_path / "x.json"


def test_default_authfile_refuses_a_missing_xdg_runtime_dir(home, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "typo"))
    with pytest.raises(CredentialsError, match="XDG_RUNTIME_DIR .*typo"):
        default_authfile()


# key spellings


@pytest.mark.parametrize("key", [HOST, f"https://{HOST}", f"http://{HOST}", f"https://{HOST}/v1/", f"{HOST}/"])
def test_key_spellings_of_a_host(home, tmp_path, key):
    f = write_json(tmp_path / "a.json", {"auths": {key: auth("u", "p")}})
    assert lookup(HOST, RegistryOptions(authfile=f)) == Credentials("u", "p")


def test_a_key_for_another_port_does_not_match(home, tmp_path):
    f = write_json(tmp_path / "a.json", {"auths": {"reg.example:5001": auth("u", "p"), "reg.example": auth("v", "p")}})
    assert lookup(HOST, RegistryOptions(authfile=f)) is None


@pytest.mark.parametrize("key", ["docker.io", "index.docker.io", "https://index.docker.io/v1/", "registry-1.docker.io"])
@pytest.mark.parametrize("host", ["docker.io", "index.docker.io", "registry-1.docker.io"])
def test_docker_hub_keys_all_match(home, tmp_path, key, host):
    f = write_json(tmp_path / "a.json", {"auths": {key: auth("hub", "p")}})
    assert lookup(host, RegistryOptions(authfile=f)) == Credentials("hub", "p")


def test_an_exact_key_beats_an_alias(home, tmp_path):
    f = write_json(tmp_path / "a.json", {"auths": {"https://index.docker.io/v1/": auth("old", "p"),
                                                   "docker.io": auth("new", "p")}})
    assert lookup("docker.io", RegistryOptions(authfile=f)).username == "new"


def test_repository_keys_most_specific_first(home, tmp_path):
    f = write_json(tmp_path / "a.json", {"auths": {
        HOST: auth("host", "p"), f"{HOST}/team": auth("team", "p"), f"{HOST}/team/app": auth("app", "p")}})
    opts = RegistryOptions(authfile=f)
    assert lookup(HOST, opts, repository="team/app").username == "app"
    assert lookup(HOST, opts, repository="team/other").username == "team"
    assert lookup(HOST, opts, repository="elsewhere/app").username == "host"
    assert lookup(HOST, opts).username == "host"


def test_a_repository_key_is_not_credentials_for_the_whole_host(home, tmp_path):
    f = write_json(tmp_path / "a.json", {"auths": {f"{HOST}/team/app": auth("app", "p")}})
    assert lookup(HOST, RegistryOptions(authfile=f), repository="team/other") is None
    assert lookup(HOST, RegistryOptions(authfile=f)) is None


def test_docker_hub_repository_key_under_an_alias(home, tmp_path):
    f = write_json(tmp_path / "a.json", {"auths": {"index.docker.io/library/alpine": auth("lib", "p")}})
    assert lookup("docker.io", RegistryOptions(authfile=f), repository="library/alpine").username == "lib"


def test_identity_token_is_returned(home, tmp_path):
    f = write_json(tmp_path / "a.json", {"auths": {HOST: {**auth("u", ""), "identitytoken": "tok"}}})
    assert lookup(HOST, RegistryOptions(authfile=f)) == Credentials("u", "", "tok")


def test_empty_entry_is_docker_marker_not_credentials(home, tmp_path):
    f = write_json(tmp_path / "a.json", {"auths": {HOST: {}}})
    assert lookup(HOST, RegistryOptions(authfile=f)) is None


def test_unknown_fields_are_ignored_when_reading(home, tmp_path):
    f = write_json(tmp_path / "a.json", {"auths": {HOST: {**auth("u", "p"), "email": "e@x"}}, "HttpHeaders": {"X": "1"}})
    assert lookup(HOST, RegistryOptions(authfile=f)) == Credentials("u", "p")


def test_password_may_contain_colons(home, tmp_path):
    f = write_json(tmp_path / "a.json", {"auths": {HOST: auth("u", "a:b:c")}})
    assert lookup(HOST, RegistryOptions(authfile=f)).password == "a:b:c"


# malformed auth files: one line naming the file and key


@pytest.mark.parametrize("content, fragment", [
    ('{"auths": {', "not valid JSON"),
    ('{"auths": {"x": NaN}}', "not valid JSON"),
    ('[]', "not a JSON object"),
    ('{"auths": []}', "auths: not an object"),
    ('{"credHelpers": "x"}', "credHelpers: not an object"),
    ('{"auths": {"%s": "dTpw"}}' % HOST, f"auths.{HOST}: not an object"),
    ('{"auths": {"%s": {"auth": "!!!"}}}' % HOST, f"auths.{HOST}: 'auth' is not base64"),
    ('{"auths": {"%s": {"auth": 7}}}' % HOST, f"auths.{HOST}: 'auth' and 'identitytoken' must be strings"),
    ('{"auths": {"%s": {"auth": "/w=="}}}' % HOST, f"auths.{HOST}: 'auth' is not base64"),  # not UTF-8
])
def test_malformed_auth_file_is_one_line_naming_file_and_key(home, tmp_path, content, fragment):
    f = tmp_path / "bad.json"
    f.write_text(content)
    with pytest.raises(CredentialsError) as exc:
        lookup(HOST, RegistryOptions(authfile=f))
    message = str(exc.value)
    assert message.startswith(f"{f}: ") and fragment in message and "\n" not in message
    assert isinstance(exc.value, OCIError) and exc.value.__cause__ is None


def test_auth_without_colon_is_an_error_that_does_not_show_the_decoded_text(home, tmp_path):
    f = write_json(tmp_path / "a.json", {"auths": {HOST: {"auth": base64.b64encode(SECRET.encode()).decode()}}})
    with pytest.raises(CredentialsError, match=f"auths.{HOST}: 'auth' has no ':'") as exc:
        lookup(HOST, RegistryOptions(authfile=f))
    assert SECRET not in str(exc.value)


def test_an_auth_file_that_is_a_directory_is_named(home, tmp_path):
    (tmp_path / "dir.json").mkdir()
    with pytest.raises(CredentialsError, match="dir.json: is a directory"):
        lookup(HOST, RegistryOptions(authfile=tmp_path / "dir.json"))


# credential helpers


def test_cred_helper_is_asked_with_the_server_on_stdin(home, tmp_path, helper):
    helper.db.write_text(json.dumps({HOST: {"Username": "hu", "Secret": SECRET}}))
    f = write_json(tmp_path / "a.json", {"auths": {HOST: auth("file", "x")}, "credHelpers": {HOST: "fake"}})
    assert lookup(HOST, RegistryOptions(authfile=f)) == Credentials("hu", SECRET)
    assert helper.calls() == [{"argv": ["get"], "stdin": HOST}]


def test_cred_helper_token_username_means_identity_token(home, tmp_path, helper):
    helper.db.write_text(json.dumps({HOST: {"Username": "<token>", "Secret": "refresh"}}))
    f = write_json(tmp_path / "a.json", {"credHelpers": {HOST: "fake"}})
    assert lookup(HOST, RegistryOptions(authfile=f)) == Credentials("", "", "refresh")


def test_cred_helper_holding_nothing_means_anonymous(home, tmp_path, helper):
    f = write_json(tmp_path / "a.json", {"credHelpers": {HOST: "fake"}})
    assert lookup(HOST, RegistryOptions(authfile=f)) is None


def test_docker_hub_is_asked_for_by_dockers_server_url(home, tmp_path, helper):
    helper.db.write_text(json.dumps({"https://index.docker.io/v1/": {"Username": "hub", "Secret": "p"}}))
    f = write_json(tmp_path / "a.json", {"credHelpers": {"docker.io": "fake"}})
    assert lookup("registry-1.docker.io", RegistryOptions(authfile=f)) == Credentials("hub", "p")


def test_creds_store_is_used_when_auths_has_only_dockers_marker(home, tmp_path, helper):
    helper.db.write_text(json.dumps({HOST: {"Username": "st", "Secret": "p"}}))
    f = write_json(tmp_path / "a.json", {"auths": {HOST: {}}, "credsStore": "fake"})
    assert lookup(HOST, RegistryOptions(authfile=f)) == Credentials("st", "p")


def test_cred_helpers_entry_for_another_host_is_not_used(home, tmp_path, helper):
    f = write_json(tmp_path / "a.json", {"auths": {HOST: auth("file", "x")}, "credHelpers": {"other.example": "fake"}})
    assert lookup(HOST, RegistryOptions(authfile=f)) == Credentials("file", "x")
    assert helper.calls() == []


def test_missing_helper_is_an_error_naming_it_and_the_host(home, tmp_path, helper):
    f = write_json(tmp_path / "a.json", {"credHelpers": {HOST: "absent"}})
    with pytest.raises(CredentialsError, match=f"docker-credential-absent for {HOST} is not installed"):
        lookup(HOST, RegistryOptions(authfile=f))


@pytest.mark.parametrize("name", ["../../../bin/sh", "", ".hidden", 7])
def test_helper_names_that_are_paths_are_refused(home, tmp_path, helper, name):
    f = write_json(tmp_path / "a.json", {"credHelpers": {HOST: name}})
    with pytest.raises(CredentialsError, match=f"credHelpers.{HOST}: not a credential helper name"):
        lookup(HOST, RegistryOptions(authfile=f))


def test_failing_helper_is_one_line_with_its_first_line(home, tmp_path, helper):
    helper.install("broken", "#!/bin/sh\necho 'keychain locked'\necho second >&2\nexit 3\n")
    f = write_json(tmp_path / "a.json", {"credHelpers": {HOST: "broken"}})
    with pytest.raises(CredentialsError) as exc:
        lookup(HOST, RegistryOptions(authfile=f))
    assert str(exc.value) == f"credential helper docker-credential-broken get for {HOST} failed: keychain locked"


def test_helper_answering_garbage_is_an_error(home, tmp_path, helper):
    helper.install("garbage", "#!/bin/sh\necho '{\"User\": 1}'\n")
    f = write_json(tmp_path / "a.json", {"credHelpers": {HOST: "garbage"}})
    with pytest.raises(CredentialsError, match="answered no Username and Secret"):
        lookup(HOST, RegistryOptions(authfile=f))


# store (login)


def test_store_creates_a_private_file_in_private_directories(home, tmp_path):
    f = tmp_path / "new" / "deeper" / "auth.json"
    assert store(HOST, Credentials("u", "p"), RegistryOptions(authfile=f)) == f
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    assert stat.S_IMODE(f.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(f.parent.parent.stat().st_mode) == 0o700
    assert json.loads(f.read_text()) == {"auths": {HOST: auth("u", "p")}}
    assert lookup(HOST, RegistryOptions(authfile=f)) == Credentials("u", "p")


def test_store_keeps_every_other_key_and_unknown_field(home, tmp_path):
    f = write_json(tmp_path / "a.json", {
        "auths": {"other.example": {**auth("o", "1"), "email": "o@x"}, HOST: {**auth("old", "0"), "email": "me@x"}},
        "credHelpers": {"gcr.io": "gcloud"}, "HttpHeaders": {"User-Agent": "x"}, "psFormat": "table"})
    f.chmod(0o644)
    store(HOST, Credentials("new", "1"), RegistryOptions(authfile=f))
    data = json.loads(f.read_text())
    assert data["auths"] == {"other.example": {**auth("o", "1"), "email": "o@x"}, HOST: {**auth("new", "1"), "email": "me@x"}}
    assert data["credHelpers"] == {"gcr.io": "gcloud"} and data["HttpHeaders"] == {"User-Agent": "x"}
    assert data["psFormat"] == "table"
    assert stat.S_IMODE(f.stat().st_mode) == 0o600


def test_store_replaces_the_hosts_aliases_with_one_entry(home, tmp_path):
    f = write_json(tmp_path / "a.json", {"auths": {f"https://{HOST}/v1/": auth("old", "0")}})
    store(HOST, Credentials("new", "1"), RegistryOptions(authfile=f))
    assert json.loads(f.read_text())["auths"] == {HOST: auth("new", "1")}


def test_store_writes_the_identity_token(home, tmp_path):
    f = tmp_path / "a.json"
    store(HOST, Credentials("u", "", "tok"), RegistryOptions(authfile=f))
    assert lookup(HOST, RegistryOptions(authfile=f)) == Credentials("u", "", "tok")


def test_store_for_a_repository_writes_a_repository_key(home, tmp_path):
    f = write_json(tmp_path / "a.json", {"auths": {HOST: auth("host", "p")}})
    store(HOST, Credentials("app", "p"), RegistryOptions(authfile=f), repository="team/app")
    assert set(json.loads(f.read_text())["auths"]) == {HOST, f"{HOST}/team/app"}
    assert lookup(HOST, RegistryOptions(authfile=f), repository="team/app").username == "app"


def test_store_replaces_atomically_and_leaves_no_temporary(home, tmp_path):
    f = write_json(tmp_path / "a.json", {"auths": {}})
    before = f.stat().st_ino
    store(HOST, Credentials("u", "p"), RegistryOptions(authfile=f))
    assert f.stat().st_ino != before  # a new file renamed over the old one, not rewritten in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "home"]


def test_store_through_a_symlink_keeps_the_link(home, tmp_path):
    real = write_json(tmp_path / "real" / "auth.json", {"auths": {}})
    link = tmp_path / "link.json"
    link.symlink_to(real)
    store(HOST, Credentials("u", "p"), RegistryOptions(authfile=link))
    assert link.is_symlink() and HOST in json.loads(real.read_text())["auths"]


def test_store_without_authfile_writes_the_default(home, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert store(HOST, Credentials("u", "p"), RegistryOptions()) == tmp_path / "containers/auth.json"
    assert lookup(HOST, RegistryOptions()) == Credentials("u", "p")


def test_store_refuses_a_malformed_file_and_leaves_it(home, tmp_path):
    f = tmp_path / "a.json"
    f.write_text("{oops")
    with pytest.raises(CredentialsError, match="not valid JSON"):
        store(HOST, Credentials("u", "p"), RegistryOptions(authfile=f))
    assert f.read_text() == "{oops"


def test_store_goes_to_the_hosts_cred_helper_on_stdin(home, tmp_path, helper):
    f = write_json(tmp_path / "a.json", {"auths": {}, "credHelpers": {HOST: "fake"}})
    before = f.read_text()
    store(HOST, Credentials("u", SECRET), RegistryOptions(authfile=f))
    assert helper.held() == {HOST: {"Username": "u", "Secret": SECRET}}
    assert f.read_text() == before
    (call,) = helper.calls()
    assert call["argv"] == ["store"] and json.loads(call["stdin"])["Secret"] == SECRET
    assert lookup(HOST, RegistryOptions(authfile=f)) == Credentials("u", SECRET)


def test_store_goes_to_the_creds_store(home, tmp_path, helper):
    f = write_json(tmp_path / "a.json", {"credsStore": "fake"})
    store("docker.io", Credentials("u", "p"), RegistryOptions(authfile=f))
    assert helper.held() == {"https://index.docker.io/v1/": {"Username": "u", "Secret": "p"}}


def test_store_of_an_identity_token_through_a_helper_uses_the_token_username(home, tmp_path, helper):
    f = write_json(tmp_path / "a.json", {"credsStore": "fake"})
    store(HOST, Credentials("u", "", "refresh"), RegistryOptions(authfile=f))
    assert helper.held() == {HOST: {"Username": "<token>", "Secret": "refresh"}}


# remove (logout)


def test_remove_forgets_every_alias_and_keeps_the_rest(home, tmp_path):
    f = write_json(tmp_path / "a.json", {"auths": {HOST: auth("a", "1"), f"https://{HOST}": auth("b", "1"),
                                                   "other.example": auth("o", "1")}, "psFormat": "x"})
    assert remove(HOST, RegistryOptions(authfile=f)) is True
    assert json.loads(f.read_text()) == {"auths": {"other.example": auth("o", "1")}, "psFormat": "x"}
    assert lookup(HOST, RegistryOptions(authfile=f)) is None


def test_remove_when_not_logged_in_is_false_and_writes_nothing(home, tmp_path):
    f = write_json(tmp_path / "a.json", {"auths": {"other.example": auth("o", "1")}})
    mtime = f.stat().st_mtime_ns
    assert remove(HOST, RegistryOptions(authfile=f)) is False
    assert remove(HOST, RegistryOptions(authfile=tmp_path / "absent.json")) is False
    assert f.stat().st_mtime_ns == mtime and not (tmp_path / "absent.json").exists()


def test_remove_keeps_repository_keys_unless_named(home, tmp_path):
    f = write_json(tmp_path / "a.json", {"auths": {HOST: auth("a", "1"), f"{HOST}/team": auth("t", "1")}})
    assert remove(HOST, RegistryOptions(authfile=f)) is True
    assert list(json.loads(f.read_text())["auths"]) == [f"{HOST}/team"]
    assert remove(HOST, RegistryOptions(authfile=f), repository="team") is True
    assert json.loads(f.read_text())["auths"] == {}


def test_remove_erases_through_the_helper(home, tmp_path, helper):
    helper.db.write_text(json.dumps({HOST: {"Username": "u", "Secret": "p"}}))
    f = write_json(tmp_path / "a.json", {"credHelpers": {HOST: "fake"}})
    assert remove(HOST, RegistryOptions(authfile=f)) is True
    assert helper.held() == {}
    assert helper.calls()[-1] == {"argv": ["erase"], "stdin": HOST}
    assert remove(HOST, RegistryOptions(authfile=f)) is False


# secrets never leak


def test_reprs_hide_password_and_token():
    text = repr(Credentials("user", SECRET, "tok-" + SECRET)) + str(Credentials("user", SECRET))
    assert SECRET not in text and "user" in text
    assert SECRET not in repr(RegistryOptions(creds=f"user:{SECRET}"))


def test_helper_argv_never_holds_the_secret(home, tmp_path, helper):
    f = write_json(tmp_path / "a.json", {"credsStore": "fake"})
    store(HOST, Credentials("u", SECRET), RegistryOptions(authfile=f))
    lookup(HOST, RegistryOptions(authfile=f))
    remove(HOST, RegistryOptions(authfile=f))
    assert [c["argv"] for c in helper.calls()] == [["store"], ["get"], ["erase"]]


def test_a_helper_echoing_the_secret_in_its_error_is_masked(home, tmp_path, helper):
    helper.install("echo", "#!/bin/sh\ncat\nexit 1\n")
    f = write_json(tmp_path / "a.json", {"credsStore": "echo"})
    with pytest.raises(CredentialsError) as exc:
        store(HOST, Credentials("u", SECRET), RegistryOptions(authfile=f))
    assert SECRET not in str(exc.value) and "***" in str(exc.value)


def test_no_warning_or_error_of_a_failed_lookup_shows_the_password(home, tmp_path, caplog):
    f = write_json(tmp_path / "a.json", {"auths": {HOST: {"auth": base64.b64encode(f"u{SECRET}".encode()).decode() + "!"}}})
    with pytest.raises(CredentialsError) as exc:
        lookup(HOST, RegistryOptions(authfile=f))
    assert SECRET not in str(exc.value) and SECRET not in caplog.text
