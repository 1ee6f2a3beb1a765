# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Edge (does I/O): one HTTP(S) or unix-socket exchange with an RR's enrollment API, and its errors.

Tokens travel only in the Authorization header: no exception or answer holds one, and a token http.client
would refuse (and quote) in a header is refused first (bearer.py).
"""

import http.client
import json
import socket
import ssl
import urllib.parse
from collections import namedtuple
from dataclasses import dataclass

from ..core import identifiers
from .bearer import bearer_token

DEFAULT_TIMEOUT = 10
MAX_RESPONSE = 8 * 1024 * 1024

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


def request(endpoint, method, path, token=None, body=None, timeout=DEFAULT_TIMEOUT, ca_file=None, headers=None):
    """One exchange -> Response(status, headers (lower-case names), body bytes); TransportError without one.

    ``headers``: extra request headers (the leaf's request nonce); they cannot replace the ones set here.
    """
    endpoint = parse_endpoint(endpoint)
    headers = dict(headers or {}, **{"Accept": "application/json", "Connection": "close"})
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


def json_object(resp):
    try:
        doc = json.loads(resp.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def api_error(endpoint, resp):
    """ApiError from a non-2xx answer; a body that is not the API's error document keeps rule None."""
    err = (json_object(resp) or {}).get("error")
    if not isinstance(err, dict) or not isinstance(err.get("rule"), str):
        return ApiError(resp.status, None, "no enrollment API error document", endpoint=endpoint, foreign=True)
    findings = err.get("findings") if isinstance(err.get("findings"), list) else ()
    return ApiError(resp.status, err["rule"], str(err.get("message") or ""), findings, endpoint)


def check_name(name, what="claim name"):
    """``name`` when the RR would accept it (core/identifiers.py), so every accepted claim can be revoked."""
    if not identifiers.is_identifier(name):
        raise ValueError("%s %r is not a valid resource name" % (what, name))
    return name
