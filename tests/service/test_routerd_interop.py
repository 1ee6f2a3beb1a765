"""Interoperability with routerd (issue 20): stubs that speak routerd's enrollment wire format as its source does.

Read in the code index of https://github.com/imksoo/routerd (its newest stored versions; the index did not give
their commit, older versions of the same files are at b9b540ba45cfe7d4c5846f44639e8400fd5ee186 for
cmd/routerd/sam_enrollment_submit.go and 5c7ac354062690d8a6d3d5959965e255438104fa for the two below):

- RR side, cmd/routerd/sam_enrollment_submit.go: submitSAMEnrollmentClaim answers 200 with
  controlapi.SAMEnrollmentClaimSubmitResult (accepted, claimRef, dynamicSource, generation, observedAt,
  expiresAt); a resubmission of the same claim is accepted again (no nonce rule); every refusal is
  controlapi.ErrBadRequest, a 400 whose error document is {"error": {"message": "bad request: ..."}} (no rule).
  getSAMEnrollmentTopologyForAcceptedClaim answers controlapi.NewSAMEnrollmentTopologyGetResult(rrSetName,
  samenrollment.ClaimDigest(accepted claim), rrSet, peerGroup); a claim it does not hold is "bad request: accepted
  SAMEnrollmentClaim/<n> not found", a revoked one "... is revoked".  No response MAC, no request nonce.
- Leaf side, pkg/controller/mobility/enrollmentclient.go: POSTs SAMEnrollmentClaimSubmitRequest{Claim: <the
  configured claim resource>}, refuses a submit result unless accepted is true and claimRef and dynamicSource are
  both "SAMEnrollmentClaim/<n>" (validateSAMEnrollmentClaimSubmitResult), then GETs the topology with claim,
  claimDigest (samenrollment.ClaimDigest) and claimIdentityDigest (samenrollment.ClientIdentityDigest), checks
  rrSet.metadata.name and rrSet.spec.enrollmentPolicyRef == the claim's policyRef, and only uses the answer's
  claimDigest to attest a direct-mesh peer group.  It sends no request nonce and reads no response MAC.
- pkg/samenrollment/enrollment.go: ClientIdentityDigest = sha256 over the canonical payload + "\\njoinHMAC=...";
  ClaimDigest adds "\\nexpiresAt=..." and "\\nrevoked=true|false".  Both written out below on purpose.

The kind names of the two results are our reading of the Go type names (the JSON of their TypeMeta was not in the
index); neither client reads them.
"""

import datetime
import hashlib
import http.server
import json
import subprocess
import threading
import urllib.parse

import pytest
from harness import JOIN_KEY, LEAF_TOKEN, SAMCTL, claims

from boma_mesh_utils.sam.core import payload, wire
from boma_mesh_utils.sam.io import enroll_client

P = wire.API_PREFIX
RRSET = {"apiVersion": wire.CLAIM_API_VERSION, "kind": "SAMRRSet", "metadata": {"name": "rrs"},
         "spec": {"enrollmentPolicyRef": "SAMEnrollmentPolicy/bench",
                  "members": [{"nodeRef": "rr-a", "endpoint": "10.192.0.252", "tunnelAddress": "10.99.0.2/32"}]}}


def identity_digest(spec):
    text = payload.canonical_payload(spec) + "\njoinHMAC=" + spec["joinHMAC"].strip()
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def claim_digest(spec):
    text = "\n".join([payload.canonical_payload(spec), "joinHMAC=" + spec["joinHMAC"].strip(),
                      "expiresAt=" + str(spec.get("expiresAt") or "").strip(),
                      "revoked=" + ("true" if spec.get("revoked") else "false")])
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def rfc3339(when):
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


class RouterdRR:
    """routerd's RR as its handler answers (module docstring). ``mac``: a header value to add (an impostor's)."""

    def __init__(self, mac=None):
        self.accepted, self.revoked, self.seen, self.mac = {}, set(), [], mac
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format, *args):  # noqa: A002 - http.server's signature
                pass

            def reply(self, status, doc):
                body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                if outer.mac is not None:
                    self.send_header(wire.RESPONSE_MAC_HEADER, outer.mac)
                self.end_headers()
                self.wfile.write(body)

            def bad(self, message):
                self.reply(400, {"apiVersion": wire.CONTROL_API_VERSION, "kind": "Error",
                                 "error": {"message": "bad request: " + message}})

            def do_POST(self):  # noqa: N802 - http.server's naming
                doc = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.seen.append(("POST", self.path, dict(self.headers)))
                claim = doc["claim"]
                source = "SAMEnrollmentClaim/" + claim["metadata"]["name"]
                if source in outer.revoked:
                    return self.bad("%s was revoked; use a new client identity" % source)
                outer.accepted[source] = claim["spec"]
                now = datetime.datetime.now(datetime.timezone.utc)
                self.reply(200, {"apiVersion": wire.CONTROL_API_VERSION, "kind": "SAMEnrollmentClaimSubmitResult",
                                 "accepted": True, "claimRef": source, "dynamicSource": source, "generation": 1,
                                 "observedAt": rfc3339(now), "expiresAt": rfc3339(now + datetime.timedelta(hours=24))})

            def do_GET(self):  # noqa: N802 - http.server's naming
                outer.seen.append(("GET", self.path, dict(self.headers)))
                url = urllib.parse.urlsplit(self.path)
                source = urllib.parse.parse_qs(url.query).get("claim", [""])[0]
                if source in outer.revoked:
                    return self.bad("accepted %s is revoked" % source)
                if source not in outer.accepted:
                    return self.bad("accepted %s not found" % source)
                name = url.path.rsplit("/", 1)[1]
                self.reply(200, {"apiVersion": wire.CONTROL_API_VERSION, "kind": "SAMEnrollmentTopologyGetResult",
                                 "metadata": {"name": name}, "claimDigest": claim_digest(outer.accepted[source]),
                                 "rrSet": RRSET})

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def routerd_rr():
    started = []

    def start(**kw):
        started.append(RouterdRR(**kw))
        return started[-1]

    yield start
    for stub in started:
        stub.close()


def join(endpoints, doc, **kw):
    now = datetime.datetime.now(datetime.timezone.utc)
    return enroll_client.join(endpoints, doc["metadata"]["name"], doc["spec"], LEAF_TOKEN, JOIN_KEY, None, now, 0.5,
                              timeout=10, **kw)


# --- a boma leaf with a routerd RR --------------------------------------------------------------------------------

def test_a_boma_leaf_refuses_a_routerd_rr_by_default_and_enrolls_with_response_mac_optional(routerd_rr):
    rr, doc = routerd_rr(), claims(1)[0]
    refused = join([rr.url], doc)
    assert not refused.ok and refused.rule == "response-mac" and "rrSet" not in refused.state
    result = join([rr.url], doc, response_mac="optional")
    assert result.ok and result.endpoint == rr.url and result.mac_verified is False, result
    assert result.state["rrSet"] == RRSET
    # routerd states its ClaimDigest form, not our identity digest: accepted for an answer without a MAC only.
    assert claim_digest(doc["spec"]) != identity_digest(doc["spec"])
    assert [(method, path.split("?")[0]) for method, path, _h in rr.seen][-2:] == [
        ("POST", P + "/sam-enrollment-claims"), ("GET", P + "/sam-enrollment-topologies/rrs")]


def test_a_wrong_mac_is_refused_even_with_response_mac_optional(routerd_rr):
    rr, doc = routerd_rr(mac="v2=" + "0" * 64), claims(1)[0]
    result = join([rr.url], doc, response_mac="optional")
    assert not result.ok and result.rule == "response-mac" and "invalid" in result.error


def test_a_routerd_refusal_is_never_definitive_and_the_next_rr_is_asked(routerd_rr):
    revoking, serving, doc = routerd_rr(), routerd_rr(), claims(1)[0]
    revoking.revoked.add("SAMEnrollmentClaim/leaf-0")
    result = join([revoking.url, serving.url], doc, response_mac="optional")
    assert result.ok and result.endpoint == serving.url and result.skipped[0].startswith("http-400: ")
    alone = join([revoking.url], doc, response_mac="optional")
    assert not alone.ok and alone.endpoint is None and alone.rule == "http-400"


def test_samctl_enrollment_join_with_response_mac_optional(routerd_rr, mesh, tmp_path):
    rr, doc = routerd_rr(), claims(1)[0]
    config = tmp_path / "leaf.json"
    config.write_text(json.dumps({"resources": [doc]}))
    argv = [SAMCTL, "enrollment-join", "--claim", "leaf-0", "--config", str(config), "--rr-url", rr.url,
            "--state-file", str(tmp_path / "state.json"), "--token-file", mesh.leaf_token,
            "--join-token-file", mesh.join_token]
    default = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=60)
    assert default.returncode == 1 and "failed: response-mac" in default.stdout
    optional = subprocess.run(argv + ["--force", "--response-mac", "optional"], check=False, capture_output=True,
                              text=True, timeout=60)
    assert optional.returncode == 0 and optional.stdout.startswith("refreshed from " + rr.url), optional
    assert "without a response MAC" in optional.stderr
    for text in (default.stdout, default.stderr, optional.stdout, optional.stderr):
        assert JOIN_KEY.decode() not in text and LEAF_TOKEN not in text


# --- a routerd leaf with a boma RR --------------------------------------------------------------------------------

@pytest.fixture
def rr(mesh):
    server = mesh.rr("rr-a").start()
    yield server
    server.stop()


def routerd_leaf_request(rr, method, target, body=None):
    """As controlapi's HTTP client sends it: bearer token, JSON, no request nonce."""
    return enroll_client.request(rr.url, method, target, LEAF_TOKEN, body, timeout=10)


def routerd_leaf_submit(rr, doc):
    resource = {"apiVersion": wire.CLAIM_API_VERSION, "kind": "SAMEnrollmentClaim", "metadata": doc["metadata"],
                "spec": doc["spec"]}
    body = {"apiVersion": wire.CONTROL_API_VERSION, "kind": "SAMEnrollmentClaimSubmitRequest", "claim": resource}
    return routerd_leaf_request(rr, "POST", P + "/sam-enrollment-claims", body)


def routerd_leaf_topology(rr, doc):
    # Go's url.Values.Encode: keys sorted, values query-escaped ("/" -> %2F, ":" -> %3A).
    query = urllib.parse.urlencode(sorted({"claim": "SAMEnrollmentClaim/" + doc["metadata"]["name"],
                                           "claimDigest": claim_digest(doc["spec"]),
                                           "claimIdentityDigest": identity_digest(doc["spec"])}.items()))
    return routerd_leaf_request(rr, "GET", P + "/sam-enrollment-topologies/rrs?" + query)


@pytest.mark.parametrize("go_zero_values", [False, True], ids=["as-written", "with-go-zero-values"])
def test_a_routerd_leaf_enrolls_with_a_boma_rr(rr, go_zero_values):
    doc = claims(1)[0]
    if go_zero_values:   # what a Go struct without omitempty would add; none of it is signed
        doc["spec"].update(expiresAt="", revoked=False, directMesh=False)
    submitted = routerd_leaf_submit(rr, doc)
    assert submitted.status == 200, submitted.body
    result = json.loads(submitted.body)
    assert result["accepted"] is True and result["claimRef"] == "SAMEnrollmentClaim/leaf-0"
    assert routerd_leaf_submit(rr, doc).status == 409   # ours refuses a replayed nonce; routerd's leaf retries GET
    got = routerd_leaf_topology(rr, doc)
    assert got.status == 200, got.body
    topology = json.loads(got.body)
    assert topology["rrSet"]["metadata"]["name"] == "rrs"
    assert topology["rrSet"]["spec"]["enrollmentPolicyRef"] == doc["spec"]["policyRef"]
    # Our RR states the identity digest; routerd's leaf compares claimDigest only to attest a direct peer group,
    # which ours never serves, so a claim without directMesh is unaffected.
    assert topology["claimDigest"] == identity_digest(doc["spec"]) != claim_digest(doc["spec"])


def test_the_submit_answer_passes_routerd_leafs_receipt_check(rr):
    """routerd's leaf refuses a submit answer without dynamicSource (validateSAMEnrollmentClaimSubmitResult)."""
    doc = claims(1)[0]
    result = json.loads(routerd_leaf_submit(rr, doc).body)
    assert result["accepted"] is True and result["claimRef"] == result["dynamicSource"] == "SAMEnrollmentClaim/leaf-0"
