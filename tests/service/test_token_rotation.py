"""Join-token rotation on a running pair of RR services, with leaves enrolling all along (issue 9).

The steps are docs/operations.md's: list the next token next to the current one (SIGHUP, no restart), hand
the next token to the leaves and give the current one a notAfter, re-sign the claims still signed with it
(``GET /sam-enrollment-claims?retiring=true`` shows which), remove it. A fleet thread submits a fresh claim
signed with whatever token the leaves hold and fetches its RRSet through both RRs, checking the response MAC
with that token: not one legitimate enrollment may be refused at any step.
"""

import datetime
import json
import subprocess
import threading
import time

from harness import JOIN_KEY, SAMCTL, claims, now_text, rule, secret, wait_for

from boma_mesh_utils.sam.core import wire
from boma_mesh_utils.sam.core.fields import format_time
from support import synthetic

NEXT_KEY = b"next-join-token-9876543210"
OLD, NEW = "2026-05", "2026-11"


def write_policy(mesh, tokens):
    """The RRs' documents with spec.joinTokens = ``tokens`` ([(id, file, notAfter or None)])."""
    docs = synthetic.service_documents(mesh.join_token)
    policy = dict(docs[1], spec=dict(docs[1]["spec"]))
    del policy["spec"]["joinTokenFrom"]
    policy["spec"]["joinTokens"] = [dict({"id": ident, "file": path}, **({"notAfter": until} if until else {}))
                                    for ident, path, until in tokens]
    docs[1] = policy
    mesh.config.write_text(json.dumps({"resources": docs}))


def reload(rrs):
    """SIGHUP each RR in turn (as `systemctl reload` does) and wait for its 'reloaded' log line."""
    for rr in rrs:
        seen = rr.log.read_text().count("reloaded documents")
        rr.proc.send_signal(1)
        assert wait_for(lambda rr=rr, seen=seen: rr.log.read_text().count("reloaded documents") > seen, 10), \
            rr.log.read_text()[-2000:]


def listing(rr, retiring=False):
    return {i["name"]: i for i in json.loads(rr.admin("GET", wire.claims_path(retiring)).body)["items"]}


def _answered(resp):
    return resp if resp.status == 200 else None


class Fleet(threading.Thread):
    """Leaves enrolling one after another, each with the token the leaves hold right now."""

    def __init__(self, rrs, start_index=1000):
        super().__init__(daemon=True)
        self.rrs, self.index, self.key = rrs, start_index, JOIN_KEY
        self.done, self.refused, self.accepted = threading.Event(), [], []

    def run(self):
        while not self.done.is_set():
            key, index = self.key, self.index
            self.index += 1
            doc = synthetic.signed_claims(1, key, timestamp=now_text(), start=index, nonce="fleet")[0]
            rr = self.rrs[index % 2]
            resp = rr.submit(doc)
            if resp.status != 200:
                self.refused.append((index, rr.name, resp.status, resp.body[:300]))
                continue
            if not wire.verify_response_mac(key, resp.body, resp.headers.get(wire.RESPONSE_MAC_HEADER.lower())):
                self.refused.append((index, rr.name, "submit answer MAC"))
            other = self.rrs[(index + 1) % 2]
            topo = wait_for(lambda o=other, n=doc["metadata"]["name"]: _answered(o.topology(n)), 10)
            if not topo or not wire.verify_response_mac(key, topo.body,
                                                        topo.headers.get(wire.RESPONSE_MAC_HEADER.lower())):
                self.refused.append((index, other.name, "topology from the other RR"))
            self.accepted.append((doc["metadata"]["name"], key))
            time.sleep(0.05)

    def stop(self):
        self.done.set()
        self.join(30)


def test_rotation_on_a_running_pair_refuses_no_legitimate_enrollment(mesh, pair):
    rr_a, rr_b = pair
    new_file = secret(mesh.tmp / "join-token.next", NEXT_KEY.decode())
    early = claims(3)   # admitted under routerd's joinTokenFrom, before any rotation
    for doc in early:
        assert rr_a.submit(doc).status == 200
    fleet = Fleet(pair)
    fleet.start()
    try:
        # 1. The next token is listed next to the current one; leaves still sign with the current one.
        write_policy(mesh, [(OLD, mesh.join_token, None), (NEW, new_file, None)])
        reload(pair)
        assert wait_for(lambda: len(fleet.accepted) >= 6, 30)
        items = listing(rr_b)
        assert {items[d["metadata"]["name"]]["joinToken"]["id"] for d in early} == {OLD}, items
        assert listing(rr_a, retiring=True) == {}

        # 2. Leaves get the next token; the current one retires in an hour.
        fleet.key = NEXT_KEY
        retire_at = format_time(datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1))
        write_policy(mesh, [(OLD, mesh.join_token, retire_at), (NEW, new_file, None)])
        reload([rr_b, rr_a])
        mark = len(fleet.accepted)
        assert wait_for(lambda: len(fleet.accepted) >= mark + 6, 30)
        signed_old = {name for name, key in fleet.accepted if key == JOIN_KEY} | {d["metadata"]["name"] for d in early}
        signed_new = {name for name, key in fleet.accepted if key == NEXT_KEY}
        for rr in pair:
            retiring = listing(rr, retiring=True)
            assert set(retiring) == signed_old, (rr.name, sorted(retiring))
            assert {i["joinToken"]["notAfter"] for i in retiring.values()} == {retire_at}
            assert all(i["expiresAt"] <= retire_at for i in retiring.values())   # the lease ends with the token
            items = listing(rr)
            assert {items[name]["joinToken"]["id"] for name in signed_new} == {NEW}
        audit = json.loads(rr_a.admin("GET", wire.audit_path(1000)).body)["items"]
        assert {e["detail"].get("joinToken") for e in audit if e["event"] == "accepted"} >= {OLD, NEW}

        # 3. Each leaf still on the old token re-signs its claim (new nonce) with the next one.
        for name in sorted(signed_old):
            index = int(name.split("-")[1])
            doc = synthetic.signed_claims(1, NEXT_KEY, timestamp=now_text(), start=index, nonce="resign")[0]
            resp = rr_b.submit(doc)
            assert resp.status == 200, resp.body
        assert wait_for(lambda: listing(rr_a, retiring=True) == {} and listing(rr_b, retiring=True) == {}, 15)

        # 4. The old token is removed: nothing signed with it is admitted any more, everything else stays.
        write_policy(mesh, [(NEW, new_file, None)])
        reload(pair)
        mark = len(fleet.accepted)
        assert wait_for(lambda: len(fleet.accepted) >= mark + 4, 30)
    finally:
        fleet.stop()
    assert fleet.refused == [], fleet.refused
    forged = synthetic.signed_claims(1, JOIN_KEY, timestamp=now_text(), start=5000, nonce="late")[0]
    for rr in pair:
        resp = rr.submit(forged)
        assert resp.status == 422 and rule(resp) == "join-hmac", resp.body
        assert "join tokens (2026-11)" in json.loads(resp.body)["error"]["message"]
        items = listing(rr)
        active = {name for name, item in items.items() if item["active"]}
        assert {name for name, _key in fleet.accepted} | {d["metadata"]["name"] for d in early} <= active
    print("ROTATION: %d enrollments through both RRs during the rotation, %d refused; %d claims re-signed"
          % (len(fleet.accepted), len(fleet.refused), len(signed_old)))


def test_removing_a_token_deactivates_its_claims_at_once(mesh, pair):
    rr_a, rr_b = pair
    new_file = secret(mesh.tmp / "join-token.next", NEXT_KEY.decode())
    write_policy(mesh, [(OLD, mesh.join_token, None), (NEW, new_file, None)])
    reload(pair)
    old = claims(1)[0]
    new = synthetic.signed_claims(1, NEXT_KEY, timestamp=now_text(), start=1)[0]
    for doc in (old, new):
        assert rr_a.submit(doc).status == 200
    assert wait_for(lambda: len(listing(rr_b)) == 2)
    # A compromised token: dropped from the policy, its claims stop at once on both RRs (no lease to wait out).
    write_policy(mesh, [(NEW, new_file, None)])
    reload(pair)
    for rr in pair:
        items = listing(rr)
        assert not items["leaf-0"]["active"] and items["leaf-0"]["joinToken"]["status"] == "retired"
        assert items["leaf-1"]["active"] and items["leaf-1"]["joinToken"]["id"] == NEW
        assert set(listing(rr, retiring=True)) == {"leaf-0"}   # out until re-signed with a listed token
        resp = rr.topology("leaf-0")
        assert resp.status == 410 and rule(resp) == "join-token-retired", resp.body
    cli = subprocess.run([SAMCTL, "claim", "list", "--retiring", "--rr-socket", rr_a.socket, "--admin-token-file",
                          mesh.admin_token], capture_output=True, text=True, timeout=30, check=False)
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.splitlines()[0].startswith("leaf-0\tinactive\t") and "\ttoken retired" in cli.stdout
    assert cli.stdout.splitlines()[-1] == "1 claim(s)"


def test_a_bad_reload_keeps_serving_the_previous_documents(mesh, pair):
    rr_a, _rr_b = pair
    mesh.config.write_text(json.dumps({"resources": [{"kind": "SAMEnrollmentPolicy", "metadata": {"name": "bench"},
                                                      "spec": {"joinTokens": [{"id": "bad id!", "file": "/x"}]}}]}))
    seen = rr_a.log.read_text().count("reload refused")
    rr_a.proc.send_signal(1)
    assert wait_for(lambda: rr_a.log.read_text().count("reload refused") > seen, 10)
    assert "join-token-id" in rr_a.log.read_text()
    assert rr_a.proc.poll() is None
    assert rr_a.submit(claims(1)[0]).status == 200   # still the old documents and token
