# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab's qemu guest (Debian's kernel, tools/kernel/vm-run.sh) kept running with guest_agent.py inside.

Usage: vm.py --prefix P {start,stop,ping,exec} [--netns NS] [-- CMD...]

- start: boot the guest in the background (a new session; console in /run/<P>/vm/console.log) with a
  random token (0600, on the 9p share vm-run.sh mounts at the same path in the guest) and a free 127.0.0.1
  port forwarded to the agent; wait until the agent answers. A running guest of the same prefix is reused.
- exec: run CMD (a shell command line) in the guest, in namespace NS when given; prints its output.
- stop: ask the agent to exit (the guest powers off), then kill qemu if it is still there.
State: /run/<P>/vm/state.json ({"port", "pid"}); the lab_vm connection reads it (ansible_lab_vm_state).
"""

import argparse
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
import agent_proto  # noqa: E402 - sibling module

AGENT_PORT = 7022


class GuestError(RuntimeError):
    pass


class Vm:
    def __init__(self, prefix):
        self.dir = Path("/run") / prefix / "vm"
        self.state_path = self.dir / "state.json"

    # -- state
    def _state(self):
        try:
            return json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return None

    @property
    def token(self):
        return (self.dir / "token").read_text().strip()

    def alive(self):
        state = self._state()
        if not state:
            return False
        try:
            return self.request("ping", timeout=5)[0] == 0
        except OSError:
            return False

    # -- requests
    def request(self, op, body=b"", timeout=None, **fields):
        state = self._state()
        if not state:
            raise GuestError(f"no lab guest state in {self.state_path} (vm.py start)")
        return agent_proto.request(("127.0.0.1", state["port"]), self.token, op, body, timeout=timeout, **fields)

    def run(self, cmd, netns=None, stdin=b"", check=True, cwd=None):
        """A shell command line in the guest; returns (rc, stdout text, stderr text)."""
        rc, out, err = self.request("exec", stdin, cmd=cmd, netns=netns, cwd=cwd or str(ROOT))
        out, err = out.decode(errors="replace"), err.decode(errors="replace")
        if check and rc:
            raise GuestError(f"guest{' ' + netns if netns else ''}: {cmd!r} failed ({rc}):\n{out[-2000:]}{err[-3000:]}")
        return rc, out, err

    # -- lifecycle
    def start(self, mem="3G", smp=2, timeout=300, collections=None):
        if self.alive():
            return False
        self.stop()
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        token_path = self.dir / "token"
        token_path.touch(mode=0o600)
        token_path.write_text(secrets.token_hex(24) + "\n")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        agent = [sys.executable, str(HERE / "guest_agent.py"), "--token-file", str(token_path), "--port",
                 str(AGENT_PORT)] + (["--collections", str(collections)] if collections else [])
        env = dict(os.environ, VM_HOSTFWD=f"tcp:127.0.0.1:{port}-:{AGENT_PORT}")
        console = open(self.dir / "console.log", "ab")  # noqa: SIM115 - handed to the background qemu
        proc = subprocess.Popen([str(ROOT / "tools" / "kernel" / "vm-run.sh"), "-m", mem, "-s", str(smp), "-t",
                                 "604800", "-o", str(self.dir), "--", *agent],
                                cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=console, stderr=console,
                                start_new_session=True)
        console.close()
        self.state_path.write_text(json.dumps({"port": port, "pid": proc.pid}))
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if proc.poll() is not None:
                raise GuestError(f"the lab guest exited ({proc.returncode}); see {self.dir / 'console.log'}")
            if self.alive():
                return True
            time.sleep(1)
        raise GuestError(f"the lab guest's agent did not answer within {timeout}s; see {self.dir / 'console.log'}")

    def stop(self, grace=20):
        state = self._state()
        if not state:
            return False
        (self.dir / "shutdown").touch()
        with contextlib.suppress(OSError, GuestError):
            self.request("ping", timeout=5)
        pgid = state["pid"]
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and _group_alive(pgid):
            time.sleep(0.5)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        for name in ("state.json", "shutdown", "token", "rc", "cmd.sh"):
            with contextlib.suppress(FileNotFoundError):
                (self.dir / name).unlink()
        return True


def _group_alive(pgid):
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    # The group leader (vm-run.sh) may be a zombie of ours: reap it.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pgid, os.WNOHANG)
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--prefix", default="boma-lab")
    parser.add_argument("--netns")
    parser.add_argument("action", choices=("start", "stop", "ping", "exec"))
    parser.add_argument("cmd", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    vm = Vm(args.prefix)
    if args.action == "start":
        print("started" if vm.start() else "already running")
    elif args.action == "stop":
        print("stopped" if vm.stop() else "not running")
    elif args.action == "ping":
        return 0 if vm.alive() else 1
    else:
        cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
        rc, out, err = vm.run(" ".join(cmd), netns=args.netns, check=False)
        sys.stdout.write(out)
        sys.stderr.write(err)
        return rc
    return 0


if __name__ == "__main__":
    sys.exit(main())
