"""`samctl agent` (issue 18): a leaf whose claim is an intent stays active on both RRs across lease lengths and
an outage of both RRs, and a revoked claim stays revoked until the intent changes.

The issue's proof uses a 60 s ttl and four lease lengths (~4 min); the lane runs BOMA_AGENT_TTL=20 (s) by default
(four 20 s leases, a 30 s outage) so the file takes about two minutes; `make test-agent-long` (part of
test-all) runs the issue's numbers: BOMA_AGENT_TTL=60 BOMA_AGENT_OUTAGE=90.
"""

import json
import os
import signal
import subprocess
import time

import pytest
from harness import ADMIN_TOKEN, JOIN_KEY, LEAF_TOKEN, SAMCTL, claims, wait_for

from boma_mesh_utils.sam.core import wire

TTL = int(os.environ.get("BOMA_AGENT_TTL", "20"))
LEASES = int(os.environ.get("BOMA_AGENT_LEASES", "4"))
OUTAGE = int(os.environ.get("BOMA_AGENT_OUTAGE", str(TTL + 10)))   # both RRs down this long (> a lease)
INTERVAL = 2
BACKOFF_MAX = 4


def set_ttl(mesh, ttl):
    config = json.loads(mesh.config.read_text())
    policy = next(r for r in config["resources"] if r["kind"] == "SAMEnrollmentPolicy")
    policy["spec"]["ttl"] = ttl
    mesh.config.write_text(json.dumps(config))


def intent(endpoint=None):
    claim = claims(1)[0]
    for key in ("joinNonce", "joinTimestamp", "joinHMAC"):
        del claim["spec"][key]
    if endpoint:
        claim["spec"]["endpoint"] = endpoint
    return claim


class AgentProc:
    def __init__(self, mesh, rrs):
        self.mesh, self.state_dir = mesh, mesh.tmp / "agent"
        self.config = mesh.tmp / "leaf.json"
        self.textfile = mesh.tmp / "agent.prom"
        self.log = mesh.tmp / "agent.log"
        self.write_claim(intent())
        argv = [SAMCTL, "agent", "--config", str(self.config), "--node", "leaf-0", "--token-file", mesh.leaf_token,
                "--join-token-file", mesh.join_token, "--state-dir", str(self.state_dir), "--apply", "none",
                "--refresh-interval", str(INTERVAL), "--backoff-max", str(BACKOFF_MAX),
                "--textfile", str(self.textfile)]
        for rr in rrs:
            argv += ["--rr-socket", rr.socket]   # the sockets survive an RR restart (its TCP port does not)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=log)

    def write_claim(self, claim):
        self.config.write_text(json.dumps({"resources": [claim]}))

    def status(self):
        out = subprocess.run([SAMCTL, "agent", "status", "--state-dir", str(self.state_dir)], capture_output=True,
                             text=True, timeout=30, check=False)
        return json.loads(out.stdout) if out.returncode == 0 else {}

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            started = time.monotonic()
            rc = self.proc.wait(10)
            return rc, time.monotonic() - started
        return self.proc.returncode, 0.0

    def secrets_absent(self):
        texts = [self.log.read_text(), (self.state_dir / "agent.json").read_text(), self.textfile.read_text()]
        return not [v for v in (LEAF_TOKEN, JOIN_KEY.decode(), ADMIN_TOKEN) for t in texts if v in t]


def listing(rr):
    try:
        items = json.loads(rr.admin("GET", wire.claims_path()).body)["items"]
    except Exception:  # noqa: BLE001 - an RR that is down lists nothing
        return {}
    return {i["name"]: i for i in items}


def nonces(rr):
    items = json.loads(rr.admin("GET", wire.audit_path(1000)).body)["items"]
    return [i["detail"]["nonce"] for i in items if i["event"] in ("accepted", "replicated") and i["claim"] == "leaf-0"]


def active_on(*rrs):
    return all(listing(rr).get("leaf-0", {}).get("active") for rr in rrs)


@pytest.fixture
def rrs(mesh):
    rr_a, rr_b = mesh.rr("rr-a", ["rr-b"]), mesh.rr("rr-b", ["rr-a"])
    yield rr_a, rr_b
    rr_a.stop()
    rr_b.stop()


def test_agent_keeps_the_claim_active_over_leases_and_through_an_outage_of_both_rrs(mesh, rrs):
    set_ttl(mesh, "%ds" % TTL)
    rr_a, rr_b = rrs
    rr_a.start()
    rr_b.start()
    agent = AgentProc(mesh, rrs)
    try:
        assert wait_for(lambda: active_on(rr_a, rr_b), timeout=15, step=0.2), agent.log.read_text()[-2000:]
        generations = []
        deadline = time.monotonic() + LEASES * TTL
        while time.monotonic() < deadline:
            seen = [listing(rr).get("leaf-0", {}) for rr in rrs]
            assert all(item.get("active") for item in seen), (seen, agent.log.read_text()[-2000:])
            generations.append(seen[0]["generation"])
            time.sleep(2)
        assert generations == sorted(generations) and generations[-1] >= generations[0] + LEASES - 1, generations
        for rr in rrs:
            used = nonces(rr)
            assert len(used) >= LEASES and len(used) == len(set(used)), used
        assert agent.proc.poll() is None

        # Both RRs down for longer than a lease: the agent keeps its state, backs off and stays up.
        rr_a.stop()
        rr_b.stop()
        time.sleep(OUTAGE)
        assert agent.proc.poll() is None
        held = json.loads((agent.state_dir / "agent.json").read_text())
        assert held["rrSet"]["metadata"]["name"] == "rrs"
        status = agent.status()
        assert status["failures"] > 0 and status["nextAttemptAt"] and status["members"] == ["rr-a", "rr-b"], status
        assert "boma_sam_agent_failures" in agent.textfile.read_text()

        # Back (same DB files): active again within a refresh interval plus the backoff cap.
        rr_a.start()
        rr_b.start()
        back = time.monotonic()
        assert wait_for(lambda: active_on(rr_a, rr_b), timeout=INTERVAL + BACKOFF_MAX + 4, step=0.2), \
            agent.log.read_text()[-2000:]
        print("active again %.1f s after the RRs returned" % (time.monotonic() - back))
        assert wait_for(lambda: agent.status().get("failures") == 0, timeout=INTERVAL + BACKOFF_MAX + 4)
        assert agent.secrets_absent()
    finally:
        rc, took = agent.stop()
    assert rc == 0 and took < 1.5, (rc, took)


def test_a_revoked_claim_is_torn_down_once_and_stays_revoked_until_the_intent_changes(mesh, rrs):
    rr_a, rr_b = rrs
    rr_a.start()
    rr_b.start()
    agent = AgentProc(mesh, rrs)
    try:
        assert wait_for(lambda: active_on(rr_a, rr_b), timeout=15, step=0.2), agent.log.read_text()[-2000:]
        first = listing(rr_a)["leaf-0"]["generation"]
        revoke = subprocess.run([SAMCTL, "claim", "revoke", "leaf-0", "--reason", "test", "--rr-url", rr_b.url,
                                 "--admin-token-file", mesh.admin_token], capture_output=True, text=True, check=False)
        assert revoke.returncode == 0, revoke.stderr
        assert wait_for(lambda: agent.status().get("revoked"), timeout=3 * INTERVAL + 2), agent.log.read_text()
        status = agent.status()
        assert "claim-revoked" in status["lastError"]
        # It does not renew: over a few intervals the claim stays revoked on both RRs.
        time.sleep(3 * INTERVAL)
        for rr in rrs:
            assert listing(rr)["leaf-0"]["revoked"] is True
        assert agent.proc.poll() is None

        # SIGHUP with the same intent changes nothing; a changed intent enrolls again.
        agent.proc.send_signal(signal.SIGHUP)
        time.sleep(2 * INTERVAL)
        assert listing(rr_a)["leaf-0"]["revoked"] is True
        agent.write_claim(intent(endpoint="10.192.0.9"))
        agent.proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: active_on(rr_a, rr_b), timeout=10, step=0.2), agent.log.read_text()[-2000:]
        assert listing(rr_a)["leaf-0"]["generation"] > first
        assert wait_for(lambda: agent.status().get("revoked") is None, timeout=5)
        assert agent.secrets_absent()
    finally:
        rc, took = agent.stop()
    assert rc == 0 and took < 1.5, (rc, took)


def test_once_exit_codes(mesh, rrs):
    rr_a, rr_b = rrs
    rr_a.start()
    config = mesh.tmp / "leaf.json"
    config.write_text(json.dumps({"resources": [intent()]}))
    base = [SAMCTL, "agent", "--once", "--config", str(config), "--token-file", mesh.leaf_token,
            "--join-token-file", mesh.join_token, "--state-dir", str(mesh.tmp / "once")]

    def once(*extra):
        return subprocess.run(base + list(extra), capture_output=True, text=True, timeout=60, check=False)

    ok = once("--node", "leaf-0", "--rr-socket", rr_b.socket, "--rr-socket", rr_a.socket)
    assert ok.returncode == 0, ok.stderr
    line = json.loads(ok.stdout)
    assert line["ok"] and line["members"] == ["rr-a", "rr-b"] and line["expiresAt"]
    down = once("--node", "leaf-0", "--rr-socket", rr_b.socket)
    assert down.returncode == 1 and "unreachable" in down.stderr
    assert once("--rr-socket", rr_a.socket).returncode == 2            # no --node
    assert once("--node", "leaf-7", "--rr-socket", rr_a.socket).returncode == 2   # no claim for it
