"""Image config -> runtime config.json, as image-spec conversion.md describes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from oci.bundle.convert import DEFAULT_PATH, layers_reader, read_in_root, resolve_user, rootfs_reader, runtime_config
from oci.errors import BundleError
from oci.models import ContainerConfig, ImageConfig

from image_helpers import make_tree, runtime_schema_validator


def _image(**cc) -> ImageConfig:  # type: ignore[no-untyped-def]
    return ImageConfig(architecture="amd64", os="linux", config=ContainerConfig(**cc))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "rootfs")


def test_entrypoint_and_cmd_concatenate_into_args() -> None:
    config = runtime_config(_image(entrypoint=["/bin/sh", "-c"], cmd=["echo hi"]), None)
    assert config["process"]["args"] == ["/bin/sh", "-c", "echo hi"]


def test_no_entrypoint_nor_cmd_is_an_error() -> None:
    with pytest.raises(BundleError, match="Entrypoint nor Cmd"):
        runtime_config(_image(), None)


def test_env_and_workdir_are_copied() -> None:
    config = runtime_config(_image(cmd=["/x"], env=["PATH=/bin", "A=1"], working_dir="/srv"), None)
    assert config["process"]["env"] == ["PATH=/bin", "A=1"] and config["process"]["cwd"] == "/srv"


def test_missing_env_gets_a_default_path() -> None:
    assert runtime_config(_image(cmd=["/x"]), None)["process"]["env"] == [DEFAULT_PATH]


def test_an_env_without_path_gets_the_default_path_first() -> None:
    env = runtime_config(_image(cmd=["/x"], env=["LANG=C.UTF-8"]), None)["process"]["env"]
    assert env == [DEFAULT_PATH, "LANG=C.UTF-8"]


def test_a_terminal_gets_term_xterm_unless_the_image_sets_term() -> None:
    assert runtime_config(_image(cmd=["/x"]), None, tty=True)["process"]["env"] == [DEFAULT_PATH, "TERM=xterm"]
    env = runtime_config(_image(cmd=["/x"], env=["TERM=vt100"]), None, tty=True)["process"]["env"]
    assert env == [DEFAULT_PATH, "TERM=vt100"]


def test_home_comes_from_passwd_unless_the_image_sets_it(root: Path) -> None:
    files = rootfs_reader(root)
    assert runtime_config(_image(cmd=["/x"]), files)["process"]["env"] == [DEFAULT_PATH, "HOME=/root"]
    assert runtime_config(_image(cmd=["/x"], user="bob"), files)["process"]["env"][-1] == "HOME=/home/bob"
    assert runtime_config(_image(cmd=["/x"], user="bob", env=["HOME=/srv"]), files)["process"]["env"] == [
        DEFAULT_PATH, "HOME=/srv"]
    # Rootless, container root runs the process: root's home, not bob's.
    rootless = runtime_config(_image(cmd=["/x"], user="bob"), files, rootless=True, uid=1000, gid=1000)
    assert rootless["process"]["env"][-1] == "HOME=/root"
    # No entry for the user (or no /etc/passwd): no HOME, as umoci writes it.
    assert runtime_config(_image(cmd=["/x"], user="4242"), files)["process"]["env"] == [DEFAULT_PATH]
    assert runtime_config(_image(cmd=["/x"]), None)["process"]["env"] == [DEFAULT_PATH]


def test_user_name_resolves_through_passwd_with_supplementary_groups(root: Path) -> None:
    assert resolve_user("bob", rootfs_reader(root)) == {"uid": 1000, "gid": 1000, "additionalGids": [10, 29]}


def test_numeric_uid_takes_its_group_from_passwd(root: Path) -> None:
    assert resolve_user("1000", rootfs_reader(root))["gid"] == 1000


def test_unknown_numeric_uid_is_allowed_with_gid_zero(root: Path) -> None:
    assert resolve_user("4242", rootfs_reader(root)) == {"uid": 4242, "gid": 0}


def test_user_and_group_names(root: Path) -> None:
    assert resolve_user("bob:wheel", rootfs_reader(root)) == {"uid": 1000, "gid": 10}


def test_uid_and_gid_numbers(root: Path) -> None:
    assert resolve_user("7:8", rootfs_reader(root)) == {"uid": 7, "gid": 8}


def test_unknown_user_name_is_an_error(root: Path) -> None:
    with pytest.raises(BundleError, match="no user 'nobody'"):
        resolve_user("nobody", rootfs_reader(root))


def test_unknown_group_name_is_an_error(root: Path) -> None:
    with pytest.raises(BundleError, match="no group 'staff'"):
        resolve_user("bob:staff", rootfs_reader(root))


def test_empty_user_is_root(root: Path) -> None:
    assert resolve_user(None, rootfs_reader(root)) == {"uid": 0, "gid": 0}


def test_passwd_symlink_escaping_the_root_resolves_inside_it(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "real").write_text("inside:x:5:6::/:/bin/sh\n")
    # ../../.. would reach the host's / from a naive join; inside the root it stays at /.
    os.symlink("../../../../../../real", root / "etc" / "passwd")
    assert read_in_root(root, "etc/passwd") == b"inside:x:5:6::/:/bin/sh\n"
    assert resolve_user("inside", rootfs_reader(root)) == {"uid": 5, "gid": 6}


def test_absolute_symlink_to_host_passwd_is_read_inside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    os.symlink("/etc/shadow-like", root / "etc" / "passwd")
    # The target does not exist inside the root, so there is no passwd at all.
    assert read_in_root(root, "etc/passwd") is None
    with pytest.raises(BundleError, match="no user 'root'"):
        resolve_user("root", rootfs_reader(root))


def test_symlinked_etc_directory_resolves_inside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    (root / "data").mkdir(parents=True)
    (root / "data" / "passwd").write_text("d:x:3:4::/:/bin/sh\n")
    os.symlink("/data", root / "etc")
    assert resolve_user("d", rootfs_reader(root)) == {"uid": 3, "gid": 4}


def test_symlink_loop_is_an_error(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    os.symlink("passwd", root / "etc" / "passwd")
    with pytest.raises(BundleError, match="symbolic links"):
        read_in_root(root, "etc/passwd")


def _two_layers(tmp_path: Path) -> tuple[Path, Path]:
    """Layer dirs low and high, each with /etc; the lower one has a passwd and a group."""
    low, high = tmp_path / "low", tmp_path / "high"
    (low / "etc").mkdir(parents=True)
    (high / "etc").mkdir(parents=True)
    (low / "etc" / "passwd").write_text("old:x:1:1::/:/bin/sh\n")
    (low / "etc" / "group").write_text("g:x:1:\n")
    return low, high


def test_layered_reader_takes_the_topmost_layer_and_honours_whiteouts(tmp_path: Path) -> None:
    low, high = _two_layers(tmp_path)
    (high / "etc" / "passwd").write_text("new:x:2:2::/:/bin/sh\n")
    os.mknod(high / "etc" / "group", 0o600 | 0o020000, os.makedev(0, 0))
    read = layers_reader([low, high])
    assert read("etc/passwd") == b"new:x:2:2::/:/bin/sh\n"
    assert read("etc/group") is None


def test_relative_symlink_target_resolves_from_the_link_s_real_directory(tmp_path: Path) -> None:
    # etc -> a/b, and a/b/passwd -> ../passwd: ".." climbs from a/b (where the link really is),
    # not from "etc" as joining the strings would, which lands on the root's /passwd instead.
    root = tmp_path / "rootfs"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "passwd").write_text("real:x:7:7::/:/bin/sh\n")
    (root / "passwd").write_text("decoy:x:9:9::/:/bin/sh\n")
    os.symlink("a/b", root / "etc")
    os.symlink("../passwd", root / "a" / "b" / "passwd")
    assert read_in_root(root, "etc/passwd") == b"real:x:7:7::/:/bin/sh\n"


@pytest.mark.parametrize("target", ["/../../../../etc/shadow", "/etc/shadow", "../../../../../etc/shadow"])
def test_passwd_linked_to_shadow_reads_the_root_s_own_shadow(tmp_path: Path, target: str) -> None:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "shadow").write_text("own:x:4:4::/:/bin/sh\n")
    os.symlink(target, root / "etc" / "passwd")
    assert read_in_root(root, "etc/passwd") == b"own:x:4:4::/:/bin/sh\n"
    assert layers_reader([root])("etc/passwd") == b"own:x:4:4::/:/bin/sh\n"


def _opaque(path: Path, userxattr: bool) -> None:
    os.setxattr(path, ("user" if userxattr else "trusted") + ".overlay.opaque", b"y")


@pytest.mark.parametrize("userxattr", [False, True])
def test_layered_reader_honours_an_opaque_directory_above(tmp_path: Path, userxattr: bool) -> None:
    if not userxattr and os.geteuid() != 0:
        pytest.skip("trusted.* xattrs need root")
    low, high = _two_layers(tmp_path)
    (high / "etc" / "group").write_text("h:x:2:\n")
    _opaque(high / "etc", userxattr)
    read = layers_reader([low, high], userxattr=userxattr)
    assert read("etc/passwd") is None
    assert read("etc/group") == b"h:x:2:\n"
    # The other kind of xattr is not what this overlay reads: the lower file shows.
    assert layers_reader([low, high], userxattr=not userxattr)("etc/passwd") == b"old:x:1:1::/:/bin/sh\n"


def test_layered_reader_hides_what_an_upper_non_directory_or_whiteout_covers(tmp_path: Path) -> None:
    low, mid, high = tmp_path / "low", tmp_path / "mid", tmp_path / "high"
    (low / "etc").mkdir(parents=True)
    (low / "etc" / "passwd").write_text("old:x:1:1::/:/bin/sh\n")
    (low / "data").mkdir()
    (low / "data" / "group").write_text("g:x:1:\n")
    mid.mkdir()
    (mid / "etc").write_text("now a file\n")
    high.mkdir()
    os.mknod(high / "data", 0o600 | 0o020000, os.makedev(0, 0))
    read = layers_reader([low, mid, high])
    assert read("etc/passwd") is None
    assert read("data/group") is None
    assert layers_reader([low])("etc/passwd") == b"old:x:1:1::/:/bin/sh\n"


def test_layered_reader_follows_symlinks_across_layers_inside_the_view(tmp_path: Path) -> None:
    low, high = tmp_path / "low", tmp_path / "high"
    (low / "srv").mkdir(parents=True)
    os.symlink("/srv/conf/../../..", low / "up")
    os.symlink("/up/up/srv/conf", low / "etc")
    (high / "srv" / "conf").mkdir(parents=True)
    (high / "srv" / "conf" / "passwd").write_text("new:x:2:2::/:/bin/sh\n")
    assert layers_reader([low, high])("etc/passwd") == b"new:x:2:2::/:/bin/sh\n"
    os.symlink("passwd", high / "srv" / "conf" / "loop")
    os.unlink(high / "srv" / "conf" / "passwd")
    os.symlink("loop", high / "srv" / "conf" / "passwd")
    with pytest.raises(BundleError, match="symbolic links"):
        layers_reader([low, high])("etc/passwd")


def test_annotations_follow_conversion_with_fields_over_labels() -> None:
    image = _image(cmd=["/x"], labels={"org.opencontainers.image.os": "spoofed", "mine": "1"},
                   stop_signal="SIGINT", exposed_ports={"80/tcp": {}, "53/udp": {}})
    image.author, image.created, image.variant = "Ann", "2020-01-01T00:00:00Z", "v2"
    ann = runtime_config(image, None)["annotations"]
    assert ann["org.opencontainers.image.os"] == "linux"
    assert ann["org.opencontainers.image.architecture"] == "amd64"
    assert ann["org.opencontainers.image.variant"] == "v2"
    assert ann["org.opencontainers.image.author"] == "Ann"
    assert ann["org.opencontainers.image.created"] == "2020-01-01T00:00:00Z"
    assert ann["org.opencontainers.image.stopSignal"] == "SIGINT"
    assert ann["org.opencontainers.image.exposedPorts"] == "53/udp,80/tcp"
    assert ann["mine"] == "1"


def test_volumes_become_mounts_only_when_asked() -> None:
    image = _image(cmd=["/x"], volumes={"/data": {}})
    assert all(m["destination"] != "/data" for m in runtime_config(image, None)["mounts"])
    mounts = runtime_config(image, None, volumes_as_mounts=True)["mounts"]
    assert [m for m in mounts if m["destination"] == "/data"][0]["type"] == "tmpfs"


def test_defaults_include_namespaces_mounts_caps_and_nofile() -> None:
    config = runtime_config(_image(cmd=["/x"]), None)
    assert {ns["type"] for ns in config["linux"]["namespaces"]} == {"pid", "network", "ipc", "uts", "mount", "cgroup"}
    assert {m["destination"] for m in config["mounts"]} >= {"/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys"}
    assert "CAP_KILL" in config["process"]["capabilities"]["bounding"]
    assert config["process"]["rlimits"][0]["type"] == "RLIMIT_NOFILE"
    assert config["process"]["terminal"] is False
    assert "/proc/kcore" in config["linux"]["maskedPaths"] and "/proc/sys" in config["linux"]["readonlyPaths"]
    runtime_schema_validator().validate(config)


def test_rootless_drops_what_an_unprivileged_user_cannot_do() -> None:
    config = runtime_config(_image(cmd=["/x"], user="1000"), None, rootless=True, uid=1234, gid=5678)
    assert config["linux"]["gidMappings"] == [{"containerID": 0, "hostID": 5678, "size": 1}]
    assert "resources" not in config["linux"]
    assert all(m["type"] != "cgroup" for m in config["mounts"])
    assert [m for m in config["mounts"] if m["destination"] == "/sys"][0]["type"] == "none"
    assert config["process"]["user"] == {"uid": 0, "gid": 0}
    runtime_schema_validator().validate(config)


def test_relative_workdir_is_an_error() -> None:
    with pytest.raises(BundleError, match="WorkingDir"):
        runtime_config(_image(cmd=["/x"], working_dir="srv"), None)


def test_schema_rejects_a_config_without_root() -> None:
    config = runtime_config(_image(cmd=["/x"]), None)
    del config["root"]
    assert not runtime_schema_validator().is_valid(config)
