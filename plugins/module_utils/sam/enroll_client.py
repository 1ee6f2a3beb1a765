# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Edge (does I/O): the leaf's enrollment client and the admin calls, over HTTP(S) or a unix socket.

When to refresh and how long to back off are client.py's decisions; this file talks to the RRs and
persists the state.  Tokens travel only in the Authorization header: no exception, result or state
holds one, and a token http.client would refuse (and quote) in a header is refused here first.
"""

import datetime
import http.client
import json
import os
import re
import socket
import ssl
import tempfile
import urllib.parse
from collections import namedtuple
from dataclasses import dataclass, field

from . import client, wire
from .fields import parse_time
from .model import split_ref

DEFAULT_TIMEOUT = 10
MAX_RESPONSE = 8 * 1024 * 1024
MAX_STATE = 4 * 1024 * 1024
# A topology without an expiry is re-fetched after this long, so a later admin expiry or revocation is seen.
DEFAULT_LEASE = datetime.timedelta(hours=1)
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")
# Answers that another RR may well answer differently; every other 4xx is the RRs' verdict on the claim.
RETRY_STATUSES = (408, 429)

Response = namedtuple("Response", "status headers body")


class EnrollError(Exception):
    """The enrollment API could not be used; the message never holds a token."""


class TransportError(EnrollError):
    """No usable HTTP answer from an endpoint (connection, TLS, timeout, framing)."""

    def __init__(self, endpoint, reason):
        super().__init__("%s: %s" % (endpoint, reason))
        self.endpoint = str(endpoint)
        self.reason = reason


class ApiError(EnrollError):
    """A JSON error answer of the API: ``status``, ``rule``, ``message`` and the findings.

    ``foreign`` marks an answer that is not the API's error document (another web server, a proxy).
    """

    def __init__(self, status, rule, message, findings=(), endpoint=None, foreign=False):
        self.status = status
        self.rule = rule or "http-%d" % status
        self.message = message or "HTTP %d" % status
        self.findings = tuple(f for f in findings if isinstance(f, dict))
        self.endpoint = None if endpoint is None else str(endpoint)
        self.foreign = foreign
        super().__init__(self.describe())

    def detail(self):
        paths = sorted({str(f.get("path")) for f in self.findings if f.get("path")})
        text = self.message + (" [%s]" % ", ".join(paths) if paths else "")
        return text + " (HTTP %d%s)" % (self.status, " from %s" % self.endpoint if self.endpoint else "")

    def describe(self):
        return "%s: %s" % (self.rule, self.detail())


@dataclass(frozen=True)
class Endpoint:
    """An RR's API address: ``http(s)://host:port[/base]`` or ``unix:/path/to/socket``."""
    scheme: str
    host: str = None
    port: int = None
    base: str = ""
    socket_path: str = None

    def __str__(self):
        if self.scheme == "unix":
            return "unix:" + self.socket_path
        host = "[%s]" % self.host if ":" in self.host else self.host
        return "%s://%s:%d%s" % (self.scheme, host, self.port, self.base)


def parse_endpoint(text):
    """Endpoint from a URL or ``unix:PATH`` (a bare absolute path is a socket too); ValueError when invalid."""
    if isinstance(text, Endpoint):
        return text
    if not isinstance(text, str) or not text.strip():
        raise ValueError("an RR endpoint must be a non-empty URL or unix:PATH")
    text = text.strip()
    if text.startswith("unix:") or text.startswith("/"):
        path = text[5:] if text.startswith("unix:") else text
        path = path[2:] if path.startswith("///") else path
        if not path:
            raise ValueError("unix: endpoint needs a socket path")
        return Endpoint("unix", socket_path=path)
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https"):
        raise ValueError("RR endpoint %r: scheme must be http, https or unix" % text)
    if "@" in parts.netloc:
        # The user part may be a password: never echo it.
        raise ValueError("RR endpoint URLs must not carry user information (the token goes in --token-file)")
    if parts.query or parts.fragment:
        raise ValueError("RR endpoint %r: no query or fragment allowed" % text)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ValueError("RR endpoint %r: invalid port" % text) from None
    if not parts.hostname:
        raise ValueError("RR endpoint %r: no host" % text)
    return Endpoint(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))


def bearer_token(raw):
    """The token as header text; ValueError (not quoting it) when it cannot travel in a header."""
    if isinstance(raw, (bytes, bytearray)):
        raw = bytes(raw).decode("ascii", "replace")   # non-ASCII becomes U+FFFD, refused below
    if not isinstance(raw, str) or not raw.strip():
        raise ValueError("the API token is empty")
    raw = raw.strip()
    if not all(33 <= ord(c) <= 126 for c in raw):
        raise ValueError("the API token contains characters not allowed in an HTTP header (space, control, non-ASCII)")
    return raw


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a unix stream socket (the RR's local admin/leaf socket)."""

    def __init__(self, socket_path, timeout=DEFAULT_TIMEOUT):
        super().__init__("localhost", timeout=timeout)
        self.socket_path = socket_path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def _connection(endpoint, timeout, ca_file):
    if endpoint.scheme == "unix":
        return UnixHTTPConnection(endpoint.socket_path, timeout)
    if endpoint.scheme == "https":
        context = ssl.create_default_context(cafile=ca_file)
        return http.client.HTTPSConnection(endpoint.host, endpoint.port, timeout=timeout, context=context)
    return http.client.HTTPConnection(endpoint.host, endpoint.port, timeout=timeout)


def _reason(exc, timeout):
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timed out after %gs" % timeout
    if isinstance(exc, ssl.SSLCertVerificationError):
        return "TLS certificate verification failed: %s" % (exc.verify_message or exc.reason)
    if isinstance(exc, ssl.SSLError):
        return "TLS error: %s" % (exc.reason or type(exc).__name__)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return ("%s: %s" % (type(exc).__name__, exc))[:300]


def request(endpoint, method, path, token=None, body=None, timeout=DEFAULT_TIMEOUT, ca_file=None):
    """One exchange -> Response(status, headers (lower-case names), body bytes); TransportError without one."""
    endpoint = parse_endpoint(endpoint)
    headers = {"Accept": "application/json", "Connection": "close"}
    if token is not None:
        headers["Authorization"] = "Bearer " + bearer_token(token)
    data = None
    if body is not None:
        data = json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")
        headers["Content-Type"] = "application/json"
    try:
        conn = _connection(endpoint, timeout, ca_file)
    except OSError as exc:
        raise TransportError(endpoint, "CA file %s: %s" % (ca_file, _reason(exc, timeout))) from None
    try:
        conn.request(method, endpoint.base + path, body=data, headers=headers)
        resp = conn.getresponse()
        raw = resp.read(MAX_RESPONSE + 1)
        if len(raw) > MAX_RESPONSE:
            raise TransportError(endpoint, "answer larger than %d bytes" % MAX_RESPONSE)
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, raw)
    except (OSError, http.client.HTTPException) as exc:
        raise TransportError(endpoint, _reason(exc, timeout)) from None
    finally:
        conn.close()


def _json(resp):
    try:
        doc = json.loads(resp.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def api_error(endpoint, resp):
    """ApiError from a non-2xx answer; a body that is not the API's error document keeps rule None."""
    err = (_json(resp) or {}).get("error")
    if not isinstance(err, dict) or not isinstance(err.get("rule"), str):
        return ApiError(resp.status, None, "no enrollment API error document", endpoint=endpoint, foreign=True)
    findings = err.get("findings") if isinstance(err.get("findings"), list) else ()
    return ApiError(resp.status, err["rule"], str(err.get("message") or ""), findings, endpoint)


def check_name(name, what="claim name"):
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ValueError("%s %r is not a valid resource name" % (what, name))
    return name


# --- leaf flow -------------------------------------------------------------------------------------------------


class _Skip(Exception):
    """This endpoint gave no usable answer; the next one is tried (``rule`` classifies why)."""

    def __init__(self, rule, message):
        super().__init__(message)
        self.rule = rule


@dataclass
class JoinResult:
    ok: bool                # no failure in this run (also when nothing had to be done)
    changed: bool           # a refresh brought a new lease or RRSet
    reason: str             # client.refresh_decision's reason ("fresh", "backoff", "expired", ..., or "forced")
    attempted: bool         # endpoints were contacted, so ``state`` is new and should be written
    state: dict = None
    endpoint: str = None    # the RR that answered (the refresh or a definitive refusal)
    rule: str = None
    error: str = None
    findings: tuple = ()
    skipped: list = field(default_factory=list)   # why earlier endpoints were passed over
    not_before: object = None


def public_state(state):
    """What may be shown (diff, logs): lease and RRSet member names; the state never holds tokens anyway."""
    if not state:
        return {}
    rrset = state.get("rrSet") if isinstance(state.get("rrSet"), dict) else {}
    spec = rrset.get("spec") if isinstance(rrset.get("spec"), dict) else rrset
    members = spec.get("members") if isinstance(spec.get("members"), list) else []
    meta = rrset.get("metadata") if isinstance(rrset.get("metadata"), dict) else {}
    return {"claimDigest": state.get("claimDigest"), "expiresAt": state.get("expiresAt"),
            "rrSet": meta.get("name"),
            "members": [m.get("nodeRef") if isinstance(m, dict) else str(m) for m in members],
            "failures": int(state.get("failures") or 0), "nextAttemptAt": state.get("nextAttemptAt")}


def _lease(state):
    state = state or {}
    return state.get("claimDigest"), state.get("expiresAt"), state.get("rrSet")


def _verified_json(endpoint, resp, join_key, what):
    if not wire.verify_response_mac(join_key, resp.body, resp.headers.get(wire.RESPONSE_MAC_HEADER.lower())):
        raise _Skip("response-mac", "response MAC missing or invalid from %s (%s)" % (endpoint, what))
    doc = _json(resp)
    if doc is None:
        raise _Skip("bad-response", "%s: %s answer is not a JSON object" % (endpoint, what))
    return doc


def _verdict(endpoint, resp, join_key):
    """Raise for a non-200 answer: ApiError when it is definitive, _Skip when another RR may do better.

    Only a refusal carrying a valid response MAC is definitive: an impostor must not be able to stop
    the leaf from reaching the real RRs by answering first with a fake 4xx.
    """
    error = api_error(endpoint, resp)
    signed = wire.verify_response_mac(join_key, resp.body, resp.headers.get(wire.RESPONSE_MAC_HEADER.lower()))
    definitive = 400 <= resp.status < 500 and resp.status not in RETRY_STATUSES and not error.foreign and signed
    if definitive:
        raise error
    raise _Skip("server-error" if resp.status >= 500 else error.rule, error.describe())


def _join_one(endpoint, ctx):
    """Submit (or, after nonce-replay, only fetch) at one endpoint -> the verified topology document."""
    resp = request(endpoint, "POST", wire.submit_path(), ctx["token"],
                   wire.submit_request(ctx["name"], ctx["spec"]), ctx["timeout"], ctx["ca_file"])
    if resp.status == 200:
        doc = _verified_json(endpoint, resp, ctx["key"], "submit")
        if doc.get("accepted") is not True:
            raise _Skip("bad-response", "%s: submit answer without accepted: true" % endpoint)
    elif resp.status != 409 or api_error(endpoint, resp).rule != "nonce-replay":
        _verdict(endpoint, resp, ctx["key"])
    # Accepted now or earlier (nonce-replay: a restart or refresh of the same signed claim): fetch the RRSet.
    resp = request(endpoint, "GET", wire.topology_path(ctx["rrset"], ctx["name"]), ctx["token"],
                   timeout=ctx["timeout"], ca_file=ctx["ca_file"])
    if resp.status != 200:
        _verdict(endpoint, resp, ctx["key"])
    doc = _verified_json(endpoint, resp, ctx["key"], "topology")
    if doc.get("claimDigest") != ctx["digest"]:
        raise _Skip("claim-digest", "%s holds another version of SAMEnrollmentClaim/%s (claimDigest differs); "
                    "a changed claim needs a new joinNonce, joinTimestamp and joinHMAC" % (endpoint, ctx["name"]))
    rrset = doc.get("rrSet")
    if not isinstance(rrset, dict):
        raise _Skip("bad-response", "%s: topology answer without an rrSet mapping" % endpoint)
    meta = rrset.get("metadata") if isinstance(rrset.get("metadata"), dict) else {}
    if meta.get("name", ctx["rrset"]) != ctx["rrset"]:
        raise _Skip("bad-response", "%s: topology is for SAMRRSet/%s, not %s" % (endpoint, meta["name"], ctx["rrset"]))
    return doc


def decide(state, claim_spec, now, force=False):
    """client.refresh_decision, or an unconditional refresh when forced."""
    if force:
        return client.Decision(True, "forced")
    return client.refresh_decision(state, claim_spec, now)


def join(endpoints, claim_name, claim_spec, api_token, join_key, state, now, jitter, force=False,
         timeout=DEFAULT_TIMEOUT, ca_file=None):
    """One leaf enrollment run; ``now`` is an aware datetime, ``jitter`` a number in [0, 1).

    Returns a JoinResult; raises ValueError only for local input problems (names, tokens, key).
    """
    decision = decide(state, claim_spec, now, force)
    if not decision.refresh:
        return JoinResult(True, False, decision.reason, False, state, not_before=decision.not_before)
    if not join_key:
        raise ValueError("a join token is required to verify the RR's response MAC")
    rrset = split_ref(claim_spec.get("rrSetRef"), "SAMRRSet")
    if not rrset:
        raise ValueError("SAMEnrollmentClaim/%s spec.rrSetRef must name a SAMRRSet" % claim_name)
    ctx = {"name": check_name(claim_name), "spec": claim_spec, "rrset": check_name(rrset, "RRSet name"),
           "token": bearer_token(api_token), "key": join_key, "digest": client.claim_digest(claim_spec),
           "timeout": timeout, "ca_file": ca_file}
    endpoints = [parse_endpoint(e) for e in endpoints]
    if not endpoints:
        raise ValueError("no RR endpoint given")
    skipped = []
    rules = []
    for endpoint in endpoints:
        try:
            doc = _join_one(endpoint, ctx)
        except TransportError as exc:
            rules.append("unreachable")
            skipped.append(str(exc))
            continue
        except _Skip as exc:
            rules.append(exc.rule)
            skipped.append(str(exc))
            continue
        except ApiError as exc:
            new = client.after_failure(state, now, jitter, exc.describe(), claim_spec)
            return JoinResult(False, False, decision.reason, True, new, str(endpoint), exc.rule, exc.detail(),
                              exc.findings, skipped)
        expires = parse_time(doc.get("expiresAt")) or now + DEFAULT_LEASE
        new = client.after_success(claim_spec, doc["rrSet"], expires, now)
        return JoinResult(True, _lease(new) != _lease(state), decision.reason, True, new, str(endpoint),
                          skipped=skipped)
    rule = rules[0] if len(set(rules)) == 1 else "all-rrs-failed"
    message = "no RR gave a usable answer: " + "; ".join(skipped)
    new = client.after_failure(state, now, jitter, "%s: %s" % (rule, message), claim_spec)
    return JoinResult(False, False, decision.reason, True, new, None, rule, message, (), skipped)


# --- state file ------------------------------------------------------------------------------------------------


def read_state(path):
    """(state, note): (None, None) without a file; (None, why) when it cannot be used, so the leaf starts over."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_STATE + 1)
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, "state file %s is unreadable (%s); starting over" % (path, (exc.strerror or "error").lower())
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None, "state file %s is not valid JSON; starting over" % path
    if not isinstance(doc, dict):
        return None, "state file %s is not a JSON object; starting over" % path
    return doc, None


def write_state(path, state):
    """Replace the state file atomically (temp file in the same directory, fsync, rename), mode 0600."""
    directory = os.path.dirname(os.path.abspath(path))
    data = (json.dumps(state, sort_keys=True, indent=2) + "\n").encode("utf-8")
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    # The rename itself must survive a crash, or a reboot could bring back the old lease.
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
