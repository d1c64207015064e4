"""linux.seccomp: real containers under real filters, side by side with runc where it runs."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, Result, assert_one_line_error, require_tool
from runtime_helpers import PODMAN_PROFILE, needs_root_and_busybox, base_config, mountinfo, podman_seccomp, write_bundle  # noqa: F401  (autouse fixture)

TIMEOUT = 30
SIGSYS_EXIT = 128 + 31
DENY_MKDIR = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}
# Exercise the filter, the calls it leaves alone, and how it shows in /proc.
MKDIR_PROBE = "mkdir /tmp/x; echo mkdir=$?; touch /tmp/y && echo touch=$?; ls /tmp; grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status"


def ocikit(*args, **kw) -> Result:
    p = subprocess.run([sys.executable, "-m", "oci", *map(str, args)], capture_output=True, text=True, timeout=TIMEOUT, cwd=REPO, **kw)
    return Result(p.returncode, p.stdout, p.stderr)


def runc(bundle: Path, tmp_path: Path) -> Result:
    p = subprocess.run(["runc", "--root", tmp_path / "runc", "run", "--bundle", bundle, f"sc-{os.getpid()}"], capture_output=True, text=True, timeout=TIMEOUT)
    return Result(p.returncode, p.stdout, p.stderr)


def bundle_with(tmp_path: Path, args: list[str], seccomp, mutate=None, name: str = "b") -> Path:
    """A bundle running ``args`` with a writable /tmp under the profile ``seccomp``, or the profile
    ``seccomp(cfg)`` makes for the config once ``mutate`` has shaped it."""
    cfg = base_config(args)
    cfg["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1777"]})
    if seccomp is not None and not callable(seccomp):
        cfg["linux"]["seccomp"] = copy.deepcopy(seccomp)
    if mutate:
        mutate(cfg)
    if callable(seccomp):
        cfg["linux"]["seccomp"] = seccomp(cfg)
    return write_bundle(tmp_path / name, cfg)


def run(bundle: Path, tmp_path: Path) -> Result:
    return ocikit("run", bundle, "--root", tmp_path / "state")


def same_as_runc(bundle: Path, tmp_path: Path) -> Result:
    """Run ``bundle`` with ocikit and, where runc is installed, check runc does the same."""
    ours = run(bundle, tmp_path)
    try:
        require_tool("runc")
    except pytest.skip.Exception:
        return ours
    theirs = runc(bundle, tmp_path)
    assert (ours.code, ours.stdout) == (theirs.code, theirs.stdout), (ours, theirs)
    return ours


def needs_podman_profile() -> None:
    if not os.path.exists(PODMAN_PROFILE):
        pytest.skip(f"{PODMAN_PROFILE} is missing (.ci/run installs golang-github-containers-common)")


# --- actions ------------------------------------------------------------------

def test_errno_rule_denies_that_call_and_nothing_else(tmp_path):
    res = same_as_runc(bundle_with(tmp_path, ["sh", "-c", MKDIR_PROBE], DENY_MKDIR), tmp_path)
    assert res.code == 0, res.stderr
    assert res.stdout == "mkdir=1\ntouch=0\ny\nNoNewPrivs:\t1\nSeccomp:\t2\n"
    assert "can't create directory '/tmp/x': Operation not permitted" in res.stderr


def test_errno_ret_is_the_errno_the_call_fails_with(tmp_path):
    prof = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 28}]}
    res = same_as_runc(bundle_with(tmp_path, ["mkdir", "/tmp/x"], prof), tmp_path)
    assert res.code == 1
    assert "No space left on device" in res.stderr  # ENOSPC


def test_errno_without_errno_ret_is_eperm(tmp_path):
    prof = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}
    res = same_as_runc(bundle_with(tmp_path, ["mkdir", "/tmp/x"], prof), tmp_path)
    assert res.code == 1
    assert "Operation not permitted" in res.stderr


def test_default_errno_ret_applies_to_every_call_not_listed(tmp_path):
    # Podman's profile, less mkdir: the default action (SCMP_ACT_ERRNO) now answers it, with
    # defaultErrnoRet changed from the profile's ENOSYS to EACCES.
    needs_podman_profile()

    def profile(cfg):
        prof = podman_seccomp(cfg)
        prof["defaultErrnoRet"] = 13
        for rule in prof["syscalls"]:
            rule["names"] = [n for n in rule["names"] if n not in ("mkdir", "mkdirat")]
        prof["syscalls"] = [r for r in prof["syscalls"] if r["names"]]
        return prof

    res = same_as_runc(bundle_with(tmp_path, ["sh", "-c", "mkdir /tmp/x || echo denied; echo ok > /tmp/y && cat /tmp/y"], profile), tmp_path)
    assert (res.code, res.stdout) == (0, "denied\nok\n"), res.stderr
    assert "can't create directory '/tmp/x': Permission denied" in res.stderr


@pytest.mark.parametrize("action", ["SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP"])
@pytest.mark.parametrize("pid_ns", [True, False])
def test_killing_actions_end_the_process_with_sigsys(tmp_path, action, pid_ns):
    def no_pidns(cfg):
        cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != "pid"]

    prof = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": action}]}
    res = same_as_runc(bundle_with(tmp_path, ["mkdir", "/tmp/x"], prof, None if pid_ns else no_pidns), tmp_path)
    assert res.code == SIGSYS_EXIT, res.stderr


def test_kill_process_under_a_shell_kills_only_the_offender(tmp_path):
    prof = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL_PROCESS"}]}
    res = same_as_runc(bundle_with(tmp_path, ["sh", "-c", "mkdir /tmp/x; echo status=$?"], prof), tmp_path)
    assert (res.code, res.stdout) == (0, f"status={SIGSYS_EXIT}\n"), res.stderr


def test_log_allows_and_trace_without_a_tracer_fails_with_enosys(tmp_path):
    prof = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_LOG"},
        {"names": ["rmdir", "unlinkat"], "action": "SCMP_ACT_TRACE"},
    ]}
    res = same_as_runc(bundle_with(tmp_path, ["sh", "-c", "mkdir /tmp/x && echo made; rmdir /tmp/x || echo kept; ls /tmp"], prof), tmp_path)
    assert (res.code, res.stdout) == (0, "made\nkept\nx\n"), res.stderr
    assert "Function not implemented" in res.stderr


def test_unknown_syscall_names_are_skipped(tmp_path):
    prof = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["no_such_call_at_all", "mkdir", "mkdirat", "also_not_a_syscall"], "action": "SCMP_ACT_ERRNO"}]}
    res = same_as_runc(bundle_with(tmp_path, ["sh", "-c", "mkdir /tmp/x; echo $?"], prof), tmp_path)
    assert (res.code, res.stdout) == (0, "1\n"), res.stderr


def test_flags_are_accepted(tmp_path):
    # (Debian's runc 1.1 refuses every flag: no comparison.)
    prof = dict(DENY_MKDIR, flags=["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"])
    res = run(bundle_with(tmp_path, ["sh", "-c", MKDIR_PROBE], prof), tmp_path)
    assert res.stdout.startswith("mkdir=1\ntouch=0\n"), res.stderr


def test_an_empty_seccomp_object_means_no_filter(tmp_path):
    res = same_as_runc(bundle_with(tmp_path, ["sh", "-c", "grep ^Seccomp: /proc/self/status"], {}), tmp_path)
    assert (res.code, res.stdout) == (0, "Seccomp:\t0\n"), res.stderr


# --- arguments ----------------------------------------------------------------

PER_LINUX32 = 0x0008


def test_an_argument_rule_matches_only_that_value(tmp_path):
    # personality(PER_LINUX32), which linux32 asks for, is denied; personality(PER_LINUX) is not.
    prof = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": PER_LINUX32, "op": "SCMP_CMP_EQ"}]}]}
    res = same_as_runc(bundle_with(tmp_path, ["sh", "-c", "linux64 uname -m; linux32 uname -m; echo status=$?"], prof), tmp_path)
    assert (res.code, res.stdout) == (0, f"{os.uname().machine}\nstatus=1\n"), res.stderr
    assert "Operation not permitted" in res.stderr


@pytest.mark.parametrize("op,value,value2,denied", [
    ("SCMP_CMP_NE", PER_LINUX32, 0, "linux64"),
    ("SCMP_CMP_GE", PER_LINUX32, 0, "linux32"),
    ("SCMP_CMP_GT", 0, 0, "linux32"),
    ("SCMP_CMP_LT", PER_LINUX32, 0, "linux64"),
    ("SCMP_CMP_LE", 0, 0, "linux64"),
    ("SCMP_CMP_MASKED_EQ", 0xFF, PER_LINUX32, "linux32"),  # (arg & value) == valueTwo
])
def test_comparison_operators(tmp_path, op, value, value2, denied):
    # Each program's own personality call decides: only the denied one fails.
    arg = {"index": 0, "value": value, "op": op} | ({"valueTwo": value2} if value2 else {})
    prof = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ERRNO", "args": [arg]}]}
    res = same_as_runc(bundle_with(tmp_path, ["sh", "-c", "linux64 true; echo linux64=$?; linux32 true; echo linux32=$?"], prof), tmp_path)
    want = {"linux64": 0, "linux32": 0, denied: 1}
    assert (res.code, res.stdout) == (0, f"linux64={want['linux64']}\nlinux32={want['linux32']}\n"), res.stderr


def test_arguments_of_one_rule_must_all_match(tmp_path):
    # kill(1, 0) is denied; kill(1, SIGCONT) and kill(other pid, 0) are not.
    prof = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["kill"], "action": "SCMP_ACT_ERRNO", "args": [
        {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}, {"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}]}]}
    script = "sleep 10 & kill -0 1; echo pid1sig0=$?; kill -CONT 1; echo pid1cont=$?; kill -0 $!; echo other=$?; kill $!"
    res = same_as_runc(bundle_with(tmp_path, ["sh", "-c", script], prof), tmp_path)
    assert (res.code, res.stdout) == (0, "pid1sig0=1\npid1cont=0\nother=0\n"), res.stderr


def test_one_argument_compared_twice_is_either_comparison_as_runc_reads_it(tmp_path):
    # libseccomp takes one comparison per argument and rule: two on the same argument are
    # two rules, either of which matches (runc's reading). personality(0) and personality(8)
    # are both denied here, though no value is both < 1 and > 7.
    prof = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ERRNO", "args": [
        {"index": 0, "value": 1, "op": "SCMP_CMP_LT"}, {"index": 0, "value": 7, "op": "SCMP_CMP_GT"}]}]}
    res = same_as_runc(bundle_with(tmp_path, ["sh", "-c", "linux64 true; echo linux64=$?; linux32 true; echo linux32=$?"], prof), tmp_path)
    assert (res.code, res.stdout) == (0, "linux64=1\nlinux32=1\n"), res.stderr


# --- podman's profile and load order ------------------------------------------

PODMAN_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID", "CAP_SYS_CHROOT"]


def as_podman_writes_it(cfg):
    """Podman's process: its default capabilities, no_new_privs left unset."""
    caps = {k: list(PODMAN_CAPS) for k in ("bounding", "effective", "permitted")}
    cfg["process"]["capabilities"] = caps
    del cfg["process"]["noNewPrivileges"]


def test_podmans_default_profile_runs_a_shell(tmp_path):
    needs_podman_profile()
    b = bundle_with(tmp_path, ["sh", "-c", "echo ok; grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status"], podman_seccomp, as_podman_writes_it)
    prof = json.loads((b / "config.json").read_text())["linux"]["seccomp"]
    assert len({n for r in prof["syscalls"] for n in r["names"]}) > 350
    res = same_as_runc(b, tmp_path)
    assert (res.code, res.stdout, res.stderr) == (0, "ok\nNoNewPrivs:\t0\nSeccomp:\t2\n", "")


def test_podmans_profile_denies_what_it_lists(tmp_path):
    # swapoff is on its list of calls answered EPERM whatever the capabilities. With
    # CAP_SYS_ADMIN the kernel alone would answer EISDIR (/tmp is no swap file): the EPERM is the filter's.
    needs_podman_profile()

    def with_sys_admin(cfg):
        as_podman_writes_it(cfg)
        for names in cfg["process"]["capabilities"].values():
            names.append("CAP_SYS_ADMIN")

    script = ["sh", "-c", "swapoff /tmp; echo $?"]
    plain = run(bundle_with(tmp_path, script, None, with_sys_admin, name="plain"), tmp_path)
    assert (plain.code, plain.stdout, plain.stderr) == (0, "1\n", "swapoff: /tmp: Is a directory\n")
    res = same_as_runc(bundle_with(tmp_path, script, podman_seccomp, with_sys_admin), tmp_path)
    assert (res.code, res.stdout, res.stderr) == (0, "1\n", "swapoff: /tmp: Operation not permitted\n")


def test_without_no_new_privs_a_non_root_process_is_filtered(tmp_path):
    # The filter is loaded while the process still holds CAP_SYS_ADMIN, before it becomes
    # uid 1000 with no capabilities; no_new_privs stays off.
    def user(cfg):
        cfg["process"]["noNewPrivileges"] = False
        cfg["process"]["user"] = {"uid": 1000, "gid": 1000}

    script = "id -u; mkdir /tmp/x; echo mkdir=$?; ls -d /tmp; grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status"
    res = same_as_runc(bundle_with(tmp_path, ["sh", "-c", script], DENY_MKDIR, user), tmp_path)
    assert (res.code, res.stdout) == (0, "1000\nmkdir=1\n/tmp\nNoNewPrivs:\t0\nSeccomp:\t2\n"), res.stderr


DENY_SET_UP = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["setgroups", "setresuid", "setresgid", "capset"], "action": "SCMP_ACT_ERRNO"}]}


def test_with_no_new_privs_the_filter_comes_after_the_set_up(tmp_path):
    # Loaded last, the filter governs the program only: the runtime's own setgroups,
    # setresgid, setresuid and capset come before it, so a profile denying them still starts.
    def user(cfg):
        cfg["process"]["user"] = {"uid": 1000, "gid": 1000}

    res = same_as_runc(bundle_with(tmp_path, ["sh", "-c", "id -u; id -g; grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status"], DENY_SET_UP, user), tmp_path)
    assert (res.code, res.stdout) == (0, "1000\n1000\nNoNewPrivs:\t1\nSeccomp:\t2\n"), res.stderr


def test_without_no_new_privs_the_filter_comes_before_the_set_up(tmp_path):
    # Without no_new_privs the kernel takes a filter only from a holder of CAP_SYS_ADMIN, so it
    # is loaded before the process gives that up, and then governs the change of user too.
    def user(cfg):
        cfg["process"]["user"] = {"uid": 1000, "gid": 1000}
        cfg["process"]["noNewPrivileges"] = False

    b = bundle_with(tmp_path, ["true"], DENY_SET_UP, user)
    assert_one_line_error(run(b, tmp_path), "process.user.gid", "Operation not permitted")
    if os.path.exists("/usr/sbin/runc") or os.path.exists("/usr/bin/runc"):
        assert runc(b, tmp_path).code != 0


def test_without_no_new_privs_a_process_keeping_cap_sys_admin_is_filtered_last(tmp_path):
    # It can load the filter itself right before execve, so it does, after its set-up. (runc
    # 1.1 loads early whenever no_new_privs is off, and fails here in setgroups.)
    def user(cfg):
        cfg["process"]["user"] = {"uid": 1000, "gid": 1000}
        cfg["process"]["noNewPrivileges"] = False
        for names in cfg["process"]["capabilities"].values():
            names.append("CAP_SYS_ADMIN")

    res = run(bundle_with(tmp_path, ["sh", "-c", "id -u; grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status"], DENY_SET_UP, user), tmp_path)
    assert (res.code, res.stdout) == (0, "1000\nNoNewPrivs:\t0\nSeccomp:\t2\n"), res.stderr


def test_create_then_start_runs_under_the_filter(tmp_path):
    b = bundle_with(tmp_path, ["sh", "-c", MKDIR_PROBE], DENY_MKDIR)
    root = tmp_path / "state"
    out = tmp_path / "out"
    with open(out, "w") as o, open(tmp_path / "err", "w") as e:  # the container keeps them open
        p = subprocess.run([sys.executable, "-m", "oci", "create", "sc1", "--bundle", b, "--root", root], stdout=o, stderr=e, timeout=TIMEOUT, cwd=REPO)
    assert p.returncode == 0, (tmp_path / "err").read_text()
    try:
        assert ocikit("start", "sc1", "--root", root).code == 0
        for _ in range(300):
            if json.loads(ocikit("state", "sc1", "--root", root).stdout)["status"] == "stopped":
                break
            __import__("time").sleep(0.05)
        assert out.read_text().startswith("mkdir=1\ntouch=0\n")
    finally:
        ocikit("delete", "--force", "sc1", "--root", root)


# --- errors -------------------------------------------------------------------

def _set(path: str, value):
    def mutate(cfg):
        keys = path.split(".")
        obj = cfg["linux"]["seccomp"]
        for k in keys[:-1]:
            obj = obj[int(k)] if k.isdigit() else obj[k]
        obj[int(keys[-1]) if keys[-1].isdigit() else keys[-1]] = value
    return mutate


ARGS_RULE = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
    {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"},
    {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}]}

BAD = {
    "unknown_default_action": (_set("defaultAction", "SCMP_ACT_BOGUS"), "linux.seccomp.defaultAction", "SCMP_ACT_BOGUS"),
    "missing_default_action": (_set("defaultAction", None), "linux.seccomp.defaultAction", "required"),
    "unknown_action": (_set("syscalls.1.action", "SCMP_ACT_MAYBE"), "linux.seccomp.syscalls[1].action", "SCMP_ACT_MAYBE"),
    "unknown_op": (_set("syscalls.1.args.0.op", "SCMP_CMP_ABOUT"), "linux.seccomp.syscalls[1].args[0].op", "SCMP_CMP_ABOUT"),
    "arg_index_out_of_range": (_set("syscalls.1.args.0.index", 6), "linux.seccomp.syscalls[1].args[0].index"),
    "negative_value": (_set("syscalls.1.args.0.value", -1), "linux.seccomp.syscalls[1].args[0].value"),
    "value_not_a_number": (_set("syscalls.1.args.0.value", "8"), "linux.seccomp.syscalls[1].args[0].value"),
    "unknown_arch": (_set("architectures", ["SCMP_ARCH_X86_64", "SCMP_ARCH_VAX"]), "linux.seccomp.architectures[1]", "SCMP_ARCH_VAX"),
    "arch_libseccomp_lacks": (_set("architectures", ["SCMP_ARCH_M68K"]), "linux.seccomp.architectures[0]", "libseccomp"),
    "unknown_flag": (_set("flags", ["SECCOMP_FILTER_FLAG_FAST"]), "linux.seccomp.flags[0]"),
    "no_names": (_set("syscalls.0.names", []), "linux.seccomp.syscalls[0].names"),
    "name_not_a_string": (_set("syscalls.0.names", ["mkdir", 83]), "linux.seccomp.syscalls[0].names[1]"),
    "errno_ret_on_allow": (_set("syscalls.0", {"names": ["mkdir"], "action": "SCMP_ACT_ALLOW", "errnoRet": 1}), "linux.seccomp.syscalls[0].errnoRet"),
    "default_errno_ret_on_allow": (_set("defaultErrnoRet", 1), "linux.seccomp.defaultErrnoRet"),
    "errno_ret_too_big": (_set("syscalls.0.errnoRet", 70000), "linux.seccomp.syscalls[0].errnoRet"),
    "notify_action": (_set("syscalls.0.action", "SCMP_ACT_NOTIFY"), "linux.seccomp.syscalls[0].action", "notify is not supported"),
    "notify_default": (_set("defaultAction", "SCMP_ACT_NOTIFY"), "linux.seccomp.defaultAction", "notify is not supported"),
    "metadata_without_listener": (_set("listenerMetadata", "x"), "linux.seccomp.listenerMetadata"),
    "not_an_object": (lambda c: c["linux"].update(seccomp=["SCMP_ACT_ALLOW"]), "linux.seccomp"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_profile_is_one_line_error_naming_the_field(tmp_path, case):
    mutate, *needles = BAD[case]
    before = mountinfo(tmp_path)
    b = bundle_with(tmp_path, ["true"], ARGS_RULE, mutate)
    assert_one_line_error(run(b, tmp_path), *needles)
    assert mountinfo(tmp_path) == before
    assert not any((tmp_path / "state").glob("*/state.json"))


def test_bad_profile_fails_create_and_leaves_no_container(tmp_path):
    b = bundle_with(tmp_path, ["true"], ARGS_RULE, _set("syscalls.1.args.0.op", "SCMP_CMP_ABOUT"))
    res = ocikit("create", "bad", "--bundle", b, "--root", tmp_path / "state")
    assert_one_line_error(res, "linux.seccomp.syscalls[1].args[0].op")
    assert not (tmp_path / "state" / "bad").exists()


def test_a_filter_longer_than_the_kernel_takes_is_refused_before_the_fork(tmp_path):
    rules = [{"names": ["personality"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": v, "op": "SCMP_CMP_EQ"}]} for v in range(4200)]
    b = bundle_with(tmp_path, ["true"], {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": rules})
    assert_one_line_error(run(b, tmp_path), "linux.seccomp", "more than the kernel's limit of 4096")


def test_a_run_without_seccomp_does_not_load_it(tmp_path):
    b = write_bundle(tmp_path / "b", base_config(["true"]))
    res = subprocess.run([sys.executable, "-S", "-X", "importtime", "-m", "oci", "run", b, "--root", tmp_path / "s"], capture_output=True, text=True, timeout=TIMEOUT, cwd=REPO)
    assert res.returncode == 0, res.stderr
    loaded = {line.rsplit("|", 1)[1].strip() for line in res.stderr.splitlines() if line.startswith("import time:")}
    assert "oci.runtime.container" in loaded and "oci.runtime.seccomp" not in loaded
