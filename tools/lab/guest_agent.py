# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab's agent inside the qemu guest: runs the controller's commands in the guest's network namespaces.

Started by vm.py as the guest's only command (tools/kernel/vm-run.sh). It brings up the guest's NIC behind
qemu's user network, then serves agent_proto requests: ``exec`` (a shell command in a namespace), ``put`` /
``fetch`` (files in the guest's filesystem), ``ping`` and ``shutdown``.

Why a zygote: the guest runs under TCG, where importing ansible.module_utils.basic alone takes ~3.6 s. This
process imports the module runtime (AnsiballZ loader, pyroute2, the collection's module_utils) once; every
request is served by a fork of it. A pipelined module invocation (``/bin/sh -c '<python> && sleep 0'`` with the
AnsiballZ payload on stdin, as Ansible sends it) whose interpreter is this one runs in the fork without an exec;
every other command runs through /bin/sh as usual. The agent is also the child subreaper of the daemons the
lab starts (FRR, the enrollment services), so they do not linger as zombies under the guest's PID 1.
"""

import argparse
import contextlib
import ctypes
import importlib
import os
import re
import shlex
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import agent_proto  # noqa: E402 - sibling module, not a package

CLONE_NEWNET = 0x40000000
PR_SET_CHILD_SUBREAPER = 36
MODULE_NAME = re.compile(rb"ansible_collections\.\w+\.\w+\.plugins\.modules\.\w+|ansible\.modules\.\w+")
ENV_WORD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
PRELOAD = ("ansible.module_utils._internal._ansiballz._loader", "ansible.module_utils.basic",
           "ansible.module_utils.common.json", "pyroute2", "pyroute2.iproute", "pyroute2.nslink",
           "yaml", "zipfile", "runpy", "shutil", "base64", "ipaddress", "hashlib", "hmac")
MODULE_ROOMS = ("core", "io", "apply", "preflight")
LIBC = ctypes.CDLL(None, use_errno=True)
VITALS_EVERY = 30.0
LOG_FD = 2   # the console (vm.py keeps it in console.log); forks move fds 1 and 2 while serving a module


def preload(collections):
    """Import what modules need, so the forks start warm; returns the names that failed (logged only)."""
    failed = []
    names = list(PRELOAD)
    if collections:
        sys.path.append(collections)
        sam = Path(collections, "ansible_collections", "boma", "mesh", "plugins", "module_utils", "sam")
        # The rooms modules import (docs/architecture.md); rr/ and cli/ never run inside a module.
        for room in MODULE_ROOMS:
            for path in sorted((sam / room).rglob("*.py")):
                parts = path.relative_to(sam).with_suffix("").parts
                names.append(".".join(("ansible_collections.boma.mesh.plugins.module_utils.sam",) + parts)
                             .removesuffix(".__init__"))
    for name in names:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - a module that cannot preload is imported by the fork instead
            failed.append(name)
    return failed


def enter_netns(name):
    if not name:
        return
    path = name if name.startswith("/") else f"/run/netns/{name}"
    fd = os.open(path, os.O_RDONLY)
    try:
        if LIBC.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns {path}: {os.strerror(err)}")
    finally:
        os.close(fd)


def pipelined_python(cmd):
    """({env}, True) when cmd is Ansible's pipelined module run with this interpreter, else (None, False)."""
    try:
        outer = shlex.split(cmd)
        if outer[:2] != ["/bin/sh", "-c"] or len(outer) != 3:
            return None, False
        words = shlex.split(outer[2])
    except ValueError:
        return None, False
    if words[-3:] != ["&&", "sleep", "0"]:
        return None, False
    words = words[:-3]
    env = {}
    while words and ENV_WORD.match(words[0]):
        key, _sep, value = words.pop(0).partition("=")
        env[key] = value
    if len(words) != 1 or os.path.realpath(words[0]) != os.path.realpath(sys.executable):
        return None, False
    return env, True


def run_in_process(source, env):
    """Run an AnsiballZ payload in this (forked) process; returns (rc, stdout, stderr)."""
    os.environ.update(env)
    out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(out.fileno(), 1)
    os.dup2(err.fileno(), 2)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    rc = 0
    try:
        exec(compile(source, "<stdin>", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})  # noqa: S102
    except SystemExit as exc:
        if isinstance(exc.code, int):
            rc = exc.code
        elif exc.code is not None:
            print(exc.code, file=sys.stderr)
            rc = 1
    except BaseException:  # noqa: BLE001 - reported to the controller like an interpreter would
        traceback.print_exc()
        rc = 1
    sys.stdout.flush()
    sys.stderr.flush()
    out.seek(0)
    err.seek(0)
    return rc, out.read(), err.read()


def run_shell(cmd, stdin, cwd):
    # Files, not pipes: a daemon the command starts keeps its stdout open, and a pipe would never reach EOF.
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.run(["/bin/sh", "-c", cmd], input=stdin, stdout=out, stderr=err, cwd=cwd, check=False)
        out.seek(0)
        err.seek(0)
        return proc.returncode, out.read(), err.read()


def handle(conn, token):
    """One request, in a forked child (may change namespace and fds: the child exits afterwards)."""
    with conn.makefile("rb") as reader:
        header, body = agent_proto.read_request(reader)
    if not agent_proto.token_ok(header, token):
        agent_proto.write_response(conn, 255, err=b"lab agent: bad token\n")
        return
    op = header.get("op")
    try:
        enter_netns(header.get("netns"))
    except OSError as exc:
        agent_proto.write_response(conn, 255, err=f"lab agent: network namespace {header.get('netns')}: {exc}\n"
                                   .encode())
        return
    started = time.monotonic()
    what = op
    if op == "exec" and pipelined_python(header["cmd"])[1]:
        found = MODULE_NAME.search(body)
        what = "module " + (found.group(0).decode() if found else "?")
    try:
        _serve_op(conn, op, header, body)
    finally:
        os.write(LOG_FD, f"agent: {header.get('netns') or '-'} {what} {time.monotonic() - started:.2f}s "
                         f"{header.get('cmd', header.get('path', ''))[:100]!r}\n".encode())


def _serve_op(conn, op, header, body):
    if op == "ping":
        agent_proto.write_response(conn, 0, out=b"pong\n")
    elif op == "exec":
        env, fast = pipelined_python(header["cmd"])
        if fast:
            rc, out, err = run_in_process(body, env)
        else:
            rc, out, err = run_shell(header["cmd"], body, header.get("cwd") or "/")
        agent_proto.write_response(conn, rc, out, err)
    elif op == "put":
        path = header["path"]
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(body)
        agent_proto.write_response(conn, 0)
    elif op == "fetch":
        try:
            agent_proto.write_response(conn, 0, out=Path(header["path"]).read_bytes())
        except OSError as exc:
            agent_proto.write_response(conn, 1, err=f"{exc}\n".encode())
    else:
        agent_proto.write_response(conn, 255, err=f"lab agent: unknown op {op!r}\n".encode())


def vitals():
    """One line on the guest's health for the console: memory, /run, processes (a CI failure's first clue)."""
    fields = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _sep, value = line.partition(":")
            if key in ("MemTotal", "MemAvailable", "Shmem"):
                fields[key] = int(value.split()[0]) // 1024
    words = [f"{key}={value}MiB" for key, value in fields.items()]
    with contextlib.suppress(OSError):
        run = os.statvfs("/run")
        words.append(f"run_used={(run.f_blocks - run.f_bfree) * run.f_frsize // 2**20}MiB")
    with contextlib.suppress(OSError):
        words.append(f"procs={sum(1 for name in os.listdir('/proc') if name.isdigit())}")
        words.append(f"load={Path('/proc/loadavg').read_text().split()[0]}")
    return " ".join(words)


def reap():
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def nic_up(address):
    """The virtio NIC behind qemu's user network (10.0.2.0/24, the host forwards one port to it)."""
    subprocess.run(["modprobe", "virtio_net"], check=False)
    # The lab's tunnels: fou has no module alias, so nothing would autoload it (run-tests.sh does the same).
    subprocess.run(["modprobe", "-a", "veth", "ipip", "fou", "ip_gre", "wireguard"], check=False)
    from pyroute2 import IPRoute  # noqa: PLC0415 - imported after the module is loaded

    with IPRoute() as ipr:
        for _attempt in range(100):
            links = [link for link in ipr.get_links() if link.get_attr("IFLA_IFNAME") not in ("lo",)]
            if links:
                break
            time.sleep(0.1)
        index = links[0]["index"]
        ipr.link("set", index=index, state="up")
        ip, _slash, prefixlen = address.partition("/")
        ipr.addr("replace", index=index, address=ip, prefixlen=int(prefixlen or 24))


def serve(args):
    global LOG_FD  # noqa: PLW0603 - set once before the first fork
    LOG_FD = os.dup(2)
    token = Path(args.token_file).read_text().strip()
    LIBC.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    nic_up(args.address)
    started = time.monotonic()
    failed = preload(args.collections)
    print(f"lab agent: preloaded in {time.monotonic() - started:.1f}s (not preloaded: {failed or 'none'})", flush=True)
    srv = socket.create_server(("0.0.0.0", args.port), backlog=64)
    srv.settimeout(1.0)
    print(f"AGENT-READY port={args.port}", flush=True)
    vitals_due = 0.0
    while True:
        reap()
        if time.monotonic() >= vitals_due:
            vitals_due = time.monotonic() + VITALS_EVERY
            os.write(LOG_FD, f"agent: vitals {vitals()}\n".encode())
        try:
            conn, _peer = srv.accept()
        except TimeoutError:
            continue
        except OSError as exc:   # EMFILE, ENOBUFS, ...: the lab outlives one bad accept
            os.write(LOG_FD, f"agent: accept failed: {exc}; {vitals()}\n".encode())
            time.sleep(1)
            continue
        conn.settimeout(None)
        try:
            pid = os.fork()
        except OSError as exc:   # ENOMEM / EAGAIN: refuse this request, keep serving the next
            os.write(LOG_FD, f"agent: fork failed: {exc}; {vitals()}\n".encode())
            conn.close()
            time.sleep(1)
            continue
        if pid == 0:
            srv.close()
            code = 0
            try:
                handle(conn, token)
            except BaseException:  # noqa: BLE001 - the child must never return into the accept loop
                traceback.print_exc()
                code = 1
            finally:
                conn.close()
                os._exit(code)
        conn.close()
        if Path(args.token_file).with_name("shutdown").exists():
            return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--token-file", required=True)
    parser.add_argument("--port", type=int, default=7022)
    parser.add_argument("--address", default="10.0.2.15/24")
    parser.add_argument("--collections", help="a directory holding ansible_collections/boma/mesh, to preload")
    return serve(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
