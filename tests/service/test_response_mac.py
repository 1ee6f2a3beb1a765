"""Issue 17 class 4 against real `samctl serve`: the response MAC is bound to the request.

A fake RR (a tiny local HTTP server) replays answers recorded from a real RR to the real leaf client
(io/enroll_client.join): the leaf refuses them and goes on to the real RR.  Refusals of claims whose join HMAC
did not verify carry no MAC; a request without a nonce (a 0.1.x leaf) still gets the legacy body-only MAC.
"""

import datetime
import http.server
import json
import threading

import pytest
from harness import ADMIN_TOKEN, JOIN_KEY, LEAF_TOKEN, claims, rule

from boma_mesh_utils.sam.core import lease, payload, wire
from boma_mesh_utils.sam.io import enroll_client

MAC = wire.RESPONSE_MAC_HEADER.lower()
OTHER_NONCE = "7" * 32


@pytest.fixture
def rr(mesh):
    server = mesh.rr("rr-a").start()
    yield server
    server.stop()


class Replayer:
    """An impostor RR: answers every request of a method with an answer recorded from a real RR, MAC included."""

    def __init__(self, answers):
        self.answers, self.seen = answers, []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format, *args):  # noqa: A002 - http.server's signature
                pass

            def answer(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.seen.append((self.command, self.headers.get(wire.REQUEST_NONCE_HEADER)))
                resp = outer.answers[self.command]
                self.send_response(resp.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(resp.body)))
                if MAC in resp.headers:
                    self.send_header(wire.RESPONSE_MAC_HEADER, resp.headers[MAC])
                self.end_headers()
                self.wfile.write(resp.body)

            do_GET = do_POST = answer  # noqa: N815 - http.server's naming

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def impostor():
    started = []

    def start(answers):
        started.append(Replayer(answers))
        return started[-1]

    yield start
    for fake in started:
        fake.close()


def leaf_request(rr, method, path, body=None, nonce=None, token=LEAF_TOKEN):
    """One request as a leaf makes it: with a request nonce (new leaf) or without one (a 0.1.x leaf)."""
    headers = {wire.REQUEST_NONCE_HEADER: nonce} if nonce is not None else None
    return enroll_client.request(rr.url, method, path, token, body, timeout=10, headers=headers)


def submit(rr, doc, nonce=None):
    return leaf_request(rr, "POST", wire.submit_path(), wire.submit_request(doc["metadata"]["name"], doc["spec"]),
                        nonce)


def topology(rr, name, nonce=None):
    return leaf_request(rr, "GET", wire.topology_path("rrs", name), nonce=nonce)


def join(endpoints, doc):
    now = datetime.datetime.now(datetime.timezone.utc)
    return enroll_client.join(endpoints, doc["metadata"]["name"], doc["spec"], LEAF_TOKEN, JOIN_KEY, None, now, 0.5,
                              timeout=10)


def revoke(rr, name):
    assert rr.admin("POST", wire.revoke_path(name), {"reason": "test"}).status == 200


def taking(doc, owner):
    """``doc`` re-signed with the tunnel address, endpoint, /32 and router ID of ``owner``: a duplicate."""
    for key in ("tunnelAddress", "endpoint", "mobility", "bgp"):
        doc["spec"][key] = owner["spec"][key]
    doc["spec"]["joinHMAC"] = payload.join_hmac(JOIN_KEY, doc["spec"])
    return doc


@pytest.mark.parametrize("nonce", [OTHER_NONCE, None], ids=["v2-of-another-request", "legacy"])
def test_a_replayed_signed_refusal_does_not_stop_the_leaf(rr, impostor, nonce):
    """A real 409 for this very claim (its identities were taken then) replayed later: the leaf asks the real RR."""
    owner, doc = claims(1)[0], taking(claims(1, start=1)[0], claims(1)[0])
    assert submit(rr, owner, "1" * 32).status == 200
    recorded = submit(rr, doc, nonce)
    assert recorded.status == 409 and rule(recorded).startswith("duplicate-") and MAC in recorded.headers
    revoke(rr, "leaf-0")   # the identities are free now: the real RR accepts leaf-1
    fake = impostor({"POST": recorded})
    result = join([fake.url, rr.url], doc)
    assert result.ok and result.endpoint == rr.url, result
    assert len(result.skipped) == 1 and result.skipped[0].startswith(rule(recorded) + ": ")
    assert [method for method, _nonce in fake.seen] == ["POST"]
    assert wire.is_request_nonce(fake.seen[0][1]) and fake.seen[0][1] != nonce


@pytest.mark.parametrize("nonce", [OTHER_NONCE, None], ids=["v2-of-another-request", "legacy"])
def test_an_old_topology_replayed_after_a_revocation_is_refused(rr, impostor, nonce):
    """The impostor keeps the RRSet answer of a claim revoked since: the leaf refuses it and learns the verdict."""
    doc = claims(1)[0]
    assert submit(rr, doc, "2" * 32).status == 200
    replay, old = submit(rr, doc, nonce), topology(rr, "leaf-0", nonce)
    assert (replay.status, rule(replay), old.status) == (409, "nonce-replay", 200) and MAC in old.headers
    revoke(rr, "leaf-0")
    fake = impostor({"POST": replay, "GET": old})
    result = join([fake.url, rr.url], doc)
    assert not result.ok and result.rule == "claim-revoked" and result.endpoint == rr.url, result
    assert result.skipped == ["response MAC missing or invalid from %s (topology)" % fake.url]
    assert "rrSet" not in result.state
    alone = join([fake.url], doc)
    assert not alone.ok and alone.rule == "response-mac"


def test_a_refusal_of_a_claim_whose_hmac_does_not_verify_is_unsigned(mesh, pair):
    rr_a, rr_b = pair
    forged = claims(1)[0]
    forged["spec"]["joinHMAC"] = "0" * 64
    for nonce in ("3" * 32, None):
        resp = submit(rr_a, forged, nonce)
        assert (resp.status, rule(resp)) == (422, "join-hmac") and MAC not in resp.headers
    # Not definitive for the leaf: it asks every RR, then reports the rule they all gave.
    result = join([rr_a.url, rr_b.url], forged)
    assert not result.ok and result.rule == "join-hmac" and result.endpoint is None and len(result.skipped) == 2
    # A claim that is signed but out of scope is refused with a MAC bound to the request: a definitive verdict.
    signed = claims(1)[0]
    signed["spec"]["joinAudience"] = "elsewhere"
    signed["spec"]["joinHMAC"] = payload.join_hmac(JOIN_KEY, signed["spec"])
    resp = submit(rr_a, signed, "4" * 32)
    assert (resp.status, rule(resp)) == (422, "join-audience")
    assert wire.verify_response_mac_v2(JOIN_KEY, resp.headers[MAC], 422, "POST", wire.submit_path(), "4" * 32,
                                       lease.claim_digest(signed["spec"]), resp.body)
    result = join([rr_a.url, rr_b.url], signed)
    assert not result.ok and result.rule == "join-audience" and result.endpoint == rr_a.url
    # A topology request for a claim this RR does not know: 404, unsigned.
    unknown = topology(rr_a, "leaf-9", "5" * 32)
    assert (unknown.status, rule(unknown)) == (404, "unknown-claim") and MAC not in unknown.headers


def test_a_request_without_a_nonce_gets_the_legacy_mac_and_one_with_a_nonce_only_v2(rr):
    doc = claims(1)[0]
    old = submit(rr, doc)   # a 0.1.x leaf
    assert old.status == 200 and not old.headers[MAC].startswith("v2=")
    assert wire.verify_response_mac(JOIN_KEY, old.body, old.headers[MAC])
    legacy = topology(rr, "leaf-0")
    assert legacy.status == 200 and wire.verify_response_mac(JOIN_KEY, legacy.body, legacy.headers[MAC])
    nonce, target = "6" * 32, wire.topology_path("rrs", "leaf-0")
    new = topology(rr, "leaf-0", nonce)
    digest = lease.claim_digest(doc["spec"])
    assert new.status == 200 and json.loads(new.body)["claimDigest"] == digest
    assert new.headers[MAC].startswith("v2=") and not wire.verify_response_mac(JOIN_KEY, new.body, new.headers[MAC])
    assert wire.verify_response_mac_v2(JOIN_KEY, new.headers[MAC], 200, "GET", target, nonce, digest, new.body)
    assert not wire.verify_response_mac_v2(JOIN_KEY, new.headers[MAC], 200, "GET", target, "8" * 32, digest,
                                           new.body)
    assert JOIN_KEY.decode() not in rr.log.read_text()


@pytest.mark.parametrize("nonce", ["", "0" * 15, "0" * 65, "ABCDEF0123456789", "not-hex-at-all-but-long"])
def test_a_malformed_nonce_is_refused_before_anything_happens(rr, nonce):
    resp = submit(rr, claims(1)[0], nonce)
    assert (resp.status, rule(resp)) == (400, "request-nonce") and MAC not in resp.headers
    assert rr.claim_names() == set(), "nothing was stored"
    assert rule(leaf_request(rr, "GET", wire.claims_path(), nonce=nonce, token=ADMIN_TOKEN)) == "request-nonce"
    assert submit(rr, claims(1)[0], "9" * 16).status == 200
