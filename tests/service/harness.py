"""Real `samctl serve` processes on loopback and unix sockets, for the service tests and the load bench."""

import datetime
import json
import os
import pathlib
import select
import signal
import subprocess
import sys
import time

from boma_mesh_utils.sam.core import wire
from boma_mesh_utils.sam.core.fields import format_time
from boma_mesh_utils.sam.io import enroll_client
from support import synthetic

SAMCTL = str(pathlib.Path(sys.executable).with_name("samctl"))
JOIN_KEY = b"bench-join-token-0123456789"
LEAF_TOKEN = "leaf-api-token-abcdef"
ADMIN_TOKEN = "admin-api-token-ghijkl"


def secret(path, value):
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return str(path)


class Mesh:
    """Shared files of one test mesh: tokens (0600) and the RRs' documents."""

    def __init__(self, tmp):
        self.tmp = pathlib.Path(tmp)
        self.join_token = secret(self.tmp / "join-token", JOIN_KEY.decode())
        self.leaf_token = secret(self.tmp / "leaf-token", LEAF_TOKEN)
        self.admin_token = secret(self.tmp / "admin-token", ADMIN_TOKEN)
        self.config = self.tmp / "rr.json"
        self.config.write_text(json.dumps({"resources": synthetic.service_documents(self.join_token)}))

    def rr(self, name, peers=(), extra=()):
        return RR(self, name, peers, extra)


def now_text(offset=0):
    return format_time(datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=offset))


def claims(count, start=0, nonce="n", offset=0):
    return synthetic.signed_claims(count, JOIN_KEY, timestamp=now_text(offset), start=start, nonce=nonce)


class RR:
    def __init__(self, mesh, name, peers=(), extra=()):
        self.mesh, self.name = mesh, name
        self.db = str(mesh.tmp / (name + ".db"))
        self.socket = str(mesh.tmp / (name + ".sock"))
        self.log = mesh.tmp / (name + ".log")
        self.peers, self.extra = list(peers), list(extra)
        self.proc, self.url = None, None
        self.argv_prefix = []   # e.g. strace, for the load bench

    def argv(self):
        argv = [SAMCTL, "serve", "--config", str(self.mesh.config), "--node", self.name, "--db", self.db,
                "--listen", "127.0.0.1:0", "--socket", self.socket, "--token-file", self.mesh.leaf_token,
                "--admin-token-file", self.mesh.admin_token, "--resync-interval", "1"]
        for peer in self.peers:
            argv += ["--peer", "unix:" + str(self.mesh.tmp / (peer + ".sock"))]
        return argv + self.extra

    def start(self, timeout=20):
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.argv_prefix + self.argv(), stdout=subprocess.PIPE, stderr=log)
        ready, _w, _x = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline().decode() if ready else ""
        if not line.startswith("listening on "):
            self.proc.kill()
            raise RuntimeError("%s did not start: %r\n%s" % (self.name, line, self.log.read_text()[-2000:]))
        self.url = line.split()[2].rstrip(",")
        return self

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)
        if self.proc:
            self.proc.stdout.close()
        self.proc = None

    def kill9(self):
        self.stop(signal.SIGKILL)

    def api(self, method, path, token=LEAF_TOKEN, body=None, endpoint=None):
        return enroll_client.request(endpoint or self.url, method, path, token, body, timeout=10)

    def submit(self, doc, endpoint=None):
        return self.api("POST", wire.submit_path(), body=wire.submit_request(doc["metadata"]["name"], doc["spec"]),
                        endpoint=endpoint)

    def topology(self, name, rrset="rrs"):
        return self.api("GET", wire.topology_path(rrset, name))

    def admin(self, method, path, body=None):
        return self.api(method, path, token=ADMIN_TOKEN, body=body)

    def claim_names(self, active_only=False):
        items = json.loads(self.admin("GET", wire.claims_path()).body)["items"]
        return {i["name"] for i in items if i["active"] or not active_only}


def wait_for(predicate, timeout=10.0, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


def rule(resp):
    return json.loads(resp.body)["error"]["rule"]
