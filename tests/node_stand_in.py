"""A scratch directory standing in for a node, shared by the script tests: stubs on PATH, k3s paths redirected."""

import base64
import os
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path

import yaml

from components import k3s
from components.registries import Registry
from tests.helpers import tool, write_executable

BASH = tool("bash")

# A `case "$*"` arm of a `k3s kubectl` stand-in: the node's release, as its kubelet reports it.
# Before the STUB_NEW_VERSION_AFTER-th look it reports STUB_OLD_VERSION (as right after a
# restart), from then on STUB_NEW_VERSION, or without it the release installed on the node.
KUBELET_VERSION_ARM = """
      *nodeInfo.kubeletVersion*)
        looks=$(($(cat "$STUB_STATE/version-looks" 2>/dev/null || echo 0) + 1))
        echo "$looks" > "$STUB_STATE/version-looks"
        if [ "$looks" -ge "${STUB_NEW_VERSION_AFTER:-1}" ]; then
          printf '%s' "${STUB_NEW_VERSION:-$(cat "$STUB_STATE/version")}"
        else
          printf '%s' "${STUB_OLD_VERSION:-}"
        fi
        exit 0
        ;;
"""

# Its kubectl answers for the node: its release (KUBELET_VERSION_ARM), and Ready from the
# STUB_READY_AFTER-th look at its Ready condition on.
K3S_STUB = (
    """#!/bin/sh
case "$1" in
  --version)
    echo "k3s version $(cat "$STUB_STATE/version") (deadbeef)"
    echo "go version go1.26.2"
    ;;
  kubectl)
    echo "$*" >> "$STUB_LOG"
    case "$*" in"""
    + KUBELET_VERSION_ARM
    + """    esac
    polls=$(($(cat "$STUB_STATE/polls" 2>/dev/null || echo 0) + 1))
    echo "$polls" > "$STUB_STATE/polls"
    if [ "$polls" -ge "${STUB_READY_AFTER:-1}" ]; then printf True; else printf False; fi
    ;;
esac
"""
)

# Stands in for curl: logs the call and "downloads" an install.sh that records its
# environment and installs the k3s stand-in at $K3S_BIN. A server's /ping answers "pong" (k3s
# pkg/server/router.go), unless the server is one of STUB_DOWN_SERVERS.
CURL_STUB = """#!/bin/sh
echo "curl $*" >> "$STUB_LOG"
case "$*" in
  */ping)
    for down in ${STUB_DOWN_SERVERS:-}; do
      case "$*" in *"https://$down:"*) echo "curl: (28) Connection timed out" >&2; exit 28 ;; esac
    done
    printf pong
    exit 0
    ;;
esac
while [ $# -gt 0 ]; do
  if [ "$1" = "-o" ]; then out="$2"; fi
  shift
done
cat > "$out" <<'INSTALLER'
echo "install.sh INSTALL_K3S_VERSION=$INSTALL_K3S_VERSION INSTALL_K3S_EXEC=$INSTALL_K3S_EXEC" >> "$STUB_LOG"
echo "$INSTALL_K3S_VERSION" > "$STUB_STATE/version"
cp "$STUB_DIR/k3s" "$K3S_BIN"
INSTALLER
"""

# k3s' server unit is Type=notify with TimeoutStartSec=0 (k3s install.sh,
# create_systemd_service_file): a blocking start or restart of it can wait for ever, so the
# stand-in refuses one; the agent's unit (Type=exec) returns once started.
# `show --property=InvocationID` answers the unit's current run, which a restart replaces unless
# STUB_RESTART_HANGS says the new run never comes.
SYSTEMCTL_STUB = """#!/bin/sh
echo "systemctl $*" >> "$STUB_LOG"
if [ "$1" = "is-active" ]; then exit "${STUB_INACTIVE:-0}"; fi
if [ "$1" = "show" ]; then echo "run-$(cat "$STUB_STATE/runs" 2>/dev/null || echo 0)"; exit 0; fi
if [ "$1" = "restart" ] && [ -z "${STUB_RESTART_HANGS:-}" ]; then
  echo "$(($(cat "$STUB_STATE/runs" 2>/dev/null || echo 0) + 1))" > "$STUB_STATE/runs"
fi
case "$*" in
  "start k3s" | "restart k3s")
    echo "systemctl $*: a blocking start of the Type=notify k3s unit; use --no-block" >&2
    exit 99
    ;;
esac
"""

# STUB_SYSCTL_FAILS makes it fail as sysctl does on a key the kernel refuses.
SYSCTL_STUB = """#!/bin/sh
echo "sysctl $*" >> "$STUB_LOG"
if [ -n "${STUB_SYSCTL_FAILS:-}" ]; then
  echo "sysctl: permission denied on key 'kernel.panic'" >&2
  exit 255
fi
"""

# dpkg-query answers that unattended-upgrades is installed, unless STUB_NO_UNATTENDED_UPGRADES.
# A read, so not logged: the call logs the tests compare stay those of what changes the node.
DPKG_QUERY_STUB = """#!/bin/sh
if [ -n "${STUB_NO_UNATTENDED_UPGRADES:-}" ]; then
  echo "dpkg-query: no packages found matching unattended-upgrades" >&2
  exit 1
fi
printf 'install ok installed'
"""

# apt-get logs its call (and DEBIAN_FRONTEND); STUB_APT_FAILS makes it fail as on a broken mirror.
APT_GET_STUB = """#!/bin/sh
echo "apt-get $* DEBIAN_FRONTEND=${DEBIAN_FRONTEND:-}" >> "$STUB_LOG"
if [ -n "${STUB_APT_FAILS:-}" ]; then
  echo "E: Unable to locate package unattended-upgrades" >&2
  exit 100
fi
"""

# Stands in for k3s-wait.sh: logs each call of its waits, one bracket per
# argument, and returns at once. A script that still polled by itself would call k3s kubectl.
WAIT_LIBRARY_STAND_IN = """
wait_until() {
  { printf 'wait_until'; printf ' [%s]' "$@"; echo; } >> "$STUB_LOG"
}
wait_for_node_ready() {
  { printf 'wait_for_node_ready'; printf ' [%s]' "$@"; echo; } >> "$STUB_LOG"
}
wait_for_node_on_release() {
  { printf 'wait_for_node_on_release'; printf ' [%s]' "$@"; echo; } >> "$STUB_LOG"
}
"""
WAIT_LIBRARY_STAND_IN_B64 = base64.b64encode(WAIT_LIBRARY_STAND_IN.encode()).decode()


def with_stand_in_wait_library(program: str) -> str:
    """`program` (settings, libraries, script) with the stand-in in place of k3s-wait.sh."""
    assignment = re.compile(r"^WAIT_LIB_B64=.*$", re.MULTILINE)
    assert len(assignment.findall(program)) == 1, "the program must carry k3s-wait.sh once"
    return assignment.sub(f"WAIT_LIB_B64={WAIT_LIBRARY_STAND_IN_B64}", program)


class Node:
    """A scratch directory standing in for the node: stubs on PATH, k3s paths redirected."""

    def __init__(self, root: Path):
        self.root = root
        self.stubs = root / "stubs"
        self.state = root / "state"
        self.config_dir = root / "etc" / "rancher" / "k3s"
        self.sysctl_dir = root / "etc" / "sysctl.d"
        self.apt_conf_dir = root / "etc" / "apt" / "apt.conf.d"
        self.server_dir = root / "var" / "lib" / "rancher" / "k3s" / "server"
        self.k3s_bin = root / "usr" / "local" / "bin" / "k3s"
        self.log = root / "calls.log"
        for directory in (self.stubs, self.state, self.k3s_bin.parent):
            directory.mkdir(parents=True)
        write_executable(self.stubs / "k3s", K3S_STUB)
        write_executable(self.stubs / "curl", CURL_STUB)
        write_executable(self.stubs / "systemctl", SYSTEMCTL_STUB)
        write_executable(self.stubs / "sysctl", SYSCTL_STUB)
        write_executable(self.stubs / "dpkg-query", DPKG_QUERY_STUB)
        write_executable(self.stubs / "apt-get", APT_GET_STUB)
        self.log.touch()

    def environment(self, **env) -> dict[str, str]:
        return {
            "PATH": f"{self.stubs}:{os.environ['PATH']}",
            "K3S_CONFIG_DIR": str(self.config_dir),
            "K3S_BIN": str(self.k3s_bin),
            "SYSCTL_DIR": str(self.sysctl_dir),
            "APT_CONF_DIR": str(self.apt_conf_dir),
            "K3S_SERVER_DIR": str(self.server_dir),
            "POLL_INTERVAL_SECONDS": "0.05",
            "STUB_STATE": str(self.state),
            "STUB_LOG": str(self.log),
            "STUB_DIR": str(self.stubs),
            **env,
        }

    @staticmethod
    def install_program(
        version="v1.36.1+k3s1", sans=("203.0.113.10",), registries: Sequence[Registry] = ()
    ) -> str:
        """The program components/k3s.py feeds to `bash -s` over SSH."""
        return k3s.install_program(
            k3s.remote_script("install-k3s-server.sh"),
            version,
            "lightsail-k3s-dev",
            k3s.server_config("lightsail-k3s-dev", sans),
            registries,
        )

    def install(
        self,
        version="v1.36.1+k3s1",
        sans=("203.0.113.10",),
        timeout: float = 30,
        registries: Sequence[Registry] = (),
        **env,
    ):
        return self.run(self.install_program(version, sans, registries), timeout=timeout, **env)

    def run(self, program: str, *args: str, timeout: float = 30, **env):
        """Runs `program` as the node's `bash -s` would, with `args` after `--`."""
        return subprocess.run(
            [BASH, "-s", "--", *args],
            input=program,
            env=self.environment(**env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def reinstall(self, **changes):
        """Installs, then runs the install again with `changes`; returns that second run and its calls."""
        assert self.install().returncode == 0
        self.calls()
        result = self.install(**changes)
        assert result.returncode == 0, result.stderr
        return result, self.calls()

    def calls(self) -> list[str]:
        calls = self.log.read_text().splitlines()
        self.log.write_text("")
        return calls

    def config(self) -> dict:
        return yaml.safe_load((self.config_dir / "config.yaml").read_text())
