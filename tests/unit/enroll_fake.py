"""A small fake RR enrollment service (docs/api.md answers incl. the response MAC) for the client tests.

It is deliberately independent of the real service (samctl serve): it checks the client against the
documented contract, not against shared code.
"""

import datetime
import hashlib
import hmac
import http.server
import json
import os
import socketserver
import tempfile
import threading
import urllib.parse

from boma_mesh_utils.sam.core import lease, payload, wire

API_TOKEN = "leaf-api-token-Zq81mN"
ADMIN_TOKEN = "admin-api-token-Wx52pR"
JOIN_TOKEN = b"example-cloudedge-join-token-not-secret"


def mac_v2(key, status, method, target, nonce, digest, body):
    """docs/api.md's v2 response MAC, written out here on purpose (not core/wire.py's code)."""
    text = "boma-response-mac/2\n%d\n%s %s\n%s\n%s\n" % (status, method, target, nonce, digest or "-")
    return "v2=" + hmac.new(key, text.encode("utf-8") + body, hashlib.sha256).hexdigest()


def rfc3339(value):
    return value.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeRR:
    """One RR. ``mode``: ok | no-mac | bad-mac | legacy-mac (an RR before v2) | reject | error500 | foreign404.

    ``canned``: {method: Response} answered as recorded (status, body, response MAC), whatever was asked: an
    impostor replaying answers it captured from a real RR.
    """

    def __init__(self, unix=False, mode="ok", join_token=JOIN_TOKEN, node="rr-a"):
        self.mode = mode
        self.join_token = join_token
        self.node = node
        self.requests = []          # (method, path, status)
        self.canned = {}
        self.request_nonces = []    # X-Boma-Request-Nonce of each request (None: not sent)
        self.authorizations = []
        self.claims = {}            # name -> record
        self.nonces = set()
        self.audit = []
        self.expires_at = rfc3339(datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1))
        self.rrset = {"apiVersion": "mobility.routerd.net/v1alpha1", "kind": "SAMRRSet",
                      "metadata": {"name": "cloudedge-rrs"},
                      "spec": {"members": [{"nodeRef": "rr-a", "endpoint": "10.10.0.2"},
                                           {"nodeRef": "rr-b", "endpoint": "10.10.0.3"}]}}
        handler = type("Handler", (_Handler,), {"rr": self})
        if unix:
            self.socket_path = os.path.join(tempfile.mkdtemp(prefix="fake-rr-"), "sam.sock")
            self.server = _UnixServer(self.socket_path, handler)
            self.url = "unix:" + self.socket_path
        else:
            self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
            self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def accept(self, name, spec):
        """Record a claim as if submitted earlier."""
        self.nonces.add(spec["joinNonce"])
        old = self.claims.get(name)
        self.claims[name] = {"spec": spec, "generation": (old["generation"] + 1) if old else 1, "revoked": False,
                             "revokedReason": None, "expiresAt": self.expires_at, "policy": spec.get("policyRef")}


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class _Handler(http.server.BaseHTTPRequestHandler):
    rr = None
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 - quiet, and unix peers have no address
        pass

    def _send(self, status, doc, mac=False, digest=None, body=None, mac_value=None):
        body = json.dumps(doc).encode("utf-8") if body is None else body
        self.rr.requests.append((self.command, self.path, status))   # before the client can see the answer
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        nonce = self.headers.get(wire.REQUEST_NONCE_HEADER)
        if mac and self.rr.mode != "no-mac":
            key = b"an-impostor-guess" if self.rr.mode == "bad-mac" else self.rr.join_token
            if nonce is None or self.rr.mode == "legacy-mac":
                mac_value = hmac.new(key, body, hashlib.sha256).hexdigest()
            else:
                mac_value = mac_v2(key, status, self.command, self.path, nonce, digest, body)
        if mac_value is not None:
            self.send_header(wire.RESPONSE_MAC_HEADER, mac_value)
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status, rule, message, findings=(), mac=False, digest=None):
        self._send(status, wire.error_body(status, rule, message, findings), mac, digest)

    def _role(self):
        auth = self.headers.get("Authorization", "")
        self.rr.authorizations.append(auth)
        return {"Bearer " + API_TOKEN: "leaf", "Bearer " + ADMIN_TOKEN: "admin"}.get(auth)

    def _body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length).decode("utf-8")) if length else None

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def _dispatch(self, method):
        rr = self.rr
        body = self._body() if method == "POST" else None
        url = urllib.parse.urlsplit(self.path)
        path = url.path[len(wire.API_PREFIX):] if url.path.startswith(wire.API_PREFIX) else None
        rr.request_nonces.append(self.headers.get(wire.REQUEST_NONCE_HEADER))
        canned = rr.canned.get(method)
        if canned is not None:
            return self._send(canned.status, None, body=canned.body,
                              mac_value=canned.headers.get(wire.RESPONSE_MAC_HEADER.lower()))
        if rr.mode == "error500":
            return self._error(500, "internal", "boom")
        if rr.mode == "foreign404":
            return self._send(404, {"detail": "not here"})
        role = self._role()
        if role is None:
            return self._error(401, "unauthorized", "missing or wrong bearer token")
        if method == "POST" and path == "/sam-enrollment-claims":
            return self._submit(body)
        if method == "GET" and path and path.startswith("/sam-enrollment-topologies/"):
            query = urllib.parse.parse_qs(url.query)
            return self._topology(path.rsplit("/", 1)[1], query.get("claim", [""])[0].split("/", 1)[-1])
        if role != "admin":
            return self._error(403, "forbidden", "admin token required")
        return self._admin(method, path or "", url, body)

    def _submit(self, body):
        rr = self.rr
        name = body["claim"]["metadata"]["name"]
        spec = body["claim"]["spec"]
        digest = lease.claim_digest(spec)
        if rr.mode == "reject":
            return self._error(422, "join-hmac", "spec.joinHMAC: does not match",
                               [{"path": "spec.joinHMAC", "rule": "join-hmac", "message": "does not match"},
                                {"path": "spec.endpoint", "rule": "scope-endpoint", "message": "outside"}], mac=True,
                               digest=digest)
        if spec.get("joinNonce") in rr.nonces:
            return self._error(409, "nonce-replay", "joinNonce was used before", mac=True, digest=digest)
        if not payload.verify_join_hmac(rr.join_token, spec):   # a claim it cannot verify: refused unsigned
            return self._error(422, "join-hmac", "spec.joinHMAC: does not match",
                               [{"path": "spec.joinHMAC", "rule": "join-hmac", "message": "does not match"}])
        rr.accept(name, spec)
        rr.audit.insert(0, {"at": rr.expires_at, "event": "accepted", "claim": name, "detail": ""})
        return self._send(200, {"apiVersion": wire.CONTROL_API_VERSION, "kind": "SAMEnrollmentClaimSubmitResponse",
                                "accepted": True, "claimRef": "SAMEnrollmentClaim/" + name,
                                "generation": rr.claims[name]["generation"], "observedAt": rr.expires_at,
                                "expiresAt": rr.claims[name]["expiresAt"]}, mac=True, digest=digest)

    def _topology(self, rrset, name):
        rr = self.rr
        record = rr.claims.get(name)
        if record is None:
            return self._error(404, "unknown-claim", "no such claim")
        digest = lease.claim_digest(record["spec"])   # the version this RR holds
        if record["revoked"]:
            return self._error(410, "claim-revoked", "SAMEnrollmentClaim/%s is revoked" % name, mac=True,
                               digest=digest)
        if record["spec"].get("rrSetRef", "").split("/")[-1] != rrset:
            return self._error(403, "rrset-mismatch", "another RRSet", mac=True, digest=digest)
        return self._send(200, {"apiVersion": wire.CONTROL_API_VERSION, "kind": "SAMEnrollmentTopology",
                                "metadata": {"name": rrset}, "claimRef": "SAMEnrollmentClaim/" + name,
                                "claimDigest": digest,
                                "generation": record["generation"], "expiresAt": record["expiresAt"],
                                "observedAt": rr.expires_at, "rrSet": rr.rrset}, mac=True, digest=digest)

    def _admin(self, method, path, url, body):
        rr = self.rr
        if method == "GET" and path == "/sam-enrollment-claims":
            return self._send(200, {"items": [
                {"name": n, "policy": r["policy"], "leafID": r["spec"].get("leafID"), "generation": r["generation"],
                 "acceptedAt": rr.expires_at, "expiresAt": r["expiresAt"], "revoked": r["revoked"],
                 "revokedReason": r["revokedReason"], "active": not r["revoked"]} for n, r in rr.claims.items()]})
        if method == "GET" and path == "/sam-enrollment-audit":
            limit = int(urllib.parse.parse_qs(url.query).get("limit", ["100"])[0])
            return self._send(200, {"items": rr.audit[:limit]})
        parts = path.split("/")
        if method == "POST" and len(parts) == 4 and parts[1] == "sam-enrollment-claims":
            record = rr.claims.get(parts[2])
            if record is None:
                return self._error(404, "unknown-claim", "no such claim")
            if parts[3] == "revoke":
                record["revoked"], record["revokedReason"] = True, body.get("reason")
                rr.audit.insert(0, {"at": rr.expires_at, "event": "revoked", "claim": parts[2],
                                    "detail": {"reason": body.get("reason")}})
                return self._send(200, {"revoked": True, "claimRef": "SAMEnrollmentClaim/" + parts[2]})
            if parts[3] == "expiry":
                if body["expiresAt"] > record["expiresAt"]:
                    return self._error(422, "expiry-extend", "expiresAt: later than the effective expiry",
                                       [{"path": "expiresAt", "rule": "expiry-extend", "message": "later"}])
                record["expiresAt"] = body["expiresAt"]
                return self._send(200, {"claimRef": "SAMEnrollmentClaim/" + parts[2], "expiresAt": body["expiresAt"]})
        return self._error(404, "not-found", "no such path")
