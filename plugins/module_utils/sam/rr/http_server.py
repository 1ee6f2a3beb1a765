# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""HTTP framing of the enrollment service: routing, auth, body limits, TLS, unix socket.

stdlib http.server only, so an RR needs nothing beyond Python.  Every answer is JSON; errors never
carry a traceback or a secret; one log line per request without bodies or headers.
"""

import os
import re
import socket
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ..core import fields, wire
from ..core.registry import Rejection
from . import http_limits, metrics
from .service import ADMIN, LEAF, LOG, encode, error_answer

P = re.escape(wire.API_PREFIX)
# (method, path pattern, role needed or None, Service method name, takes a body)
ROUTES = (
    ("POST", P + r"/sam-enrollment-claims", LEAF, "submit", True),
    ("GET", P + r"/sam-enrollment-claims", ADMIN, "listing", False),
    ("GET", P + r"/sam-enrollment-topologies/(?P<rrset>[^/?]+)", LEAF, "topology", False),
    ("POST", P + r"/sam-enrollment-claims/(?P<name>[^/?]+)/revoke", ADMIN, "revoke", True),
    ("POST", P + r"/sam-enrollment-claims/(?P<name>[^/?]+)/expiry", ADMIN, "expiry", True),
    ("GET", P + r"/sam-enrollment-audit", ADMIN, "audit", False),
    ("GET", P + r"/sam-enrollment-records", ADMIN, "records", False),
    ("POST", P + r"/sam-enrollment-records", ADMIN, "import_records", True),
    ("GET", P + r"/health", None, "health", False),
    ("GET", r"/metrics", None, "metrics", False),   # Prometheus text, counts only (rr/metrics.py)
)
# Bodies larger than wire.MAX_BODY: the peer's pushes of records (issue 17, class 6; admin token only).
BODY_LIMITS = {"import_records": wire.MAX_RECORDS_BODY}
COMPILED = tuple((m, re.compile(p + "$"), role, fn, body) for m, p, role, fn, body in ROUTES)


def route(method, path):
    """(role, function name, path params, takes body) or Rejection 404/405."""
    allowed = []
    for route_method, pattern, role, fn, body in COMPILED:
        match = pattern.match(path)
        if match:
            if route_method == method:
                return role, fn, match.groupdict(), body
            allowed.append(route_method)
    if allowed:
        raise Rejection(405, "method-not-allowed", "%s %s: use %s" % (method, path, " or ".join(allowed)))
    raise Rejection(404, "not-found", "%s is not an enrollment API path" % path)


class Handler(http_limits.EdgeHandler, BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"       # keep-alive: a leaf fetches right after submitting
    server_version = "boma-samctl"
    sys_version = ""
    # Headers and body are separate writes: with Nagle on, a keep-alive client's delayed ACK stalls
    # every answer by ~40 ms.
    disable_nagle_algorithm = True

    def setup(self):
        self.timeout = self.server.client_timeout
        # TCP_NODELAY exists on TCP only, not on the unix socket.
        self.disable_nagle_algorithm = self.request.family != socket.AF_UNIX
        super().setup()

    def do_GET(self):  # noqa: N802 - http.server's naming
        self.handle_api("GET")

    def do_POST(self):  # noqa: N802
        self.handle_api("POST")

    def do_PUT(self):  # noqa: N802
        self.handle_api("PUT")

    def do_DELETE(self):  # noqa: N802
        self.handle_api("DELETE")

    def handle_api(self, method):
        start = time.monotonic()
        service = self.server.service
        path, _sep, query = self.path.partition("?")
        key, status, fn = None, 200, None
        try:
            self.frame_body()
            role, fn, params, takes_body = route(method, path)
            if role is not None:
                self.authorize(service, role)
            args = list(params.values())
            if fn in ("topology", "audit", "listing", "records"):
                args.append(query)
            if takes_body:
                args.append(self.read_json(BODY_LIMITS.get(fn, wire.MAX_BODY)))
            service.check_nonce(self.headers.get(wire.REQUEST_NONCE_HEADER))   # 400 request-nonce
            if fn == "metrics":
                self.settle_body()
                self.send_text(200, metrics.exposition(service), metrics.CONTENT_TYPE)
                LOG.info("%s %s 200 %.1fms", method, fields.log_text(path), (time.monotonic() - start) * 1000)
                return
            answer, key = getattr(service, fn)(*args)
        except Rejection as exc:
            status, answer, key = exc.status, error_answer(exc), getattr(exc, "mac_key", None)
        except (TimeoutError, socket.timeout):
            status, answer = 408, wire.error_body(408, "timeout", "the request body did not arrive in time")
            self.close_connection = True
        except Exception as exc:  # noqa: BLE001 - the client gets JSON, the operator a log line
            LOG.error("%s %s: internal error %s", method, fields.log_text(path), type(exc).__name__)
            status, answer = 500, wire.error_body(500, "internal", "internal error; see the service log")
        self.settle_body()
        self.send_json(status, answer, key)
        if fn == "submit":
            service.metrics.submission(status, answer["error"]["rule"] if status >= 400 else None)
        LOG.info("%s %s %d%s %.1fms", method, fields.log_text(path), status,
                 (" rule=" + answer["error"]["rule"]) if status >= 400 else "", (time.monotonic() - start) * 1000)

    def authorize(self, service, needed):
        role = service.role_of(self.headers.get("Authorization"))
        if role is None:
            raise Rejection(401, "unauthorized", "a valid bearer token is required")
        if needed == ADMIN and role != ADMIN:
            raise Rejection(403, "forbidden", "this path needs the admin token")

    def read_json(self, limit=wire.MAX_BODY):
        if self.headers.get("Transfer-Encoding") is not None:
            self.close_connection = True
            raise Rejection(411, "length-required", "send the body with Content-Length, not chunked")
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/json":
            self.close_connection = True
            raise Rejection(415, "content-type", "Content-Type must be application/json, not %r" % ctype[:60])
        length = self.body_left   # frame_body(): one strict Content-Length
        if length is None:
            self.close_connection = True
            raise Rejection(411, "length-required", "Content-Length is required")
        if length > limit:
            self.close_connection = True
            raise Rejection(413, "body-too-large", "the body is %d bytes; the limit is %d" % (length, limit))
        data = self.read_exactly(length)
        self.body_left = 0
        return http_limits.decode_json(data)

    def read_exactly(self, length):
        """Read the body against one deadline, so a client trickling bytes cannot hold a thread forever."""
        deadline = time.monotonic() + self.server.client_timeout
        chunks, left = [], length
        while left:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            self.connection.settimeout(remaining)
            chunk = self.rfile.read1(min(left, 65536))
            if not chunk:
                self.close_connection = True
                raise Rejection(400, "malformed-request", "the body ended after %d of %d bytes"
                                % (length - left, length))
            chunks.append(chunk)
            left -= len(chunk)
        self.connection.settimeout(self.server.client_timeout)
        return b"".join(chunks)

    def send_text(self, status, body, content_type, headers=()):
        """One answer: status, the headers, the body; a client gone mid-answer only closes the connection."""
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers:
                self.send_header(name, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            self.close_connection = True

    def send_json(self, status, answer, key):
        body, headers = encode(answer), []
        if key:   # a wire.MacKey; v2 (bound to this request) when the request carried a nonce, else legacy
            nonce = self.headers.get(wire.REQUEST_NONCE_HEADER)
            headers.append((wire.RESPONSE_MAC_HEADER, wire.response_mac_header(
                key.key, body, status, self.command, self.path, nonce, key.digest)))
        if status == 401:
            headers.append(("WWW-Authenticate", "Bearer"))
        self.send_text(status, body, "application/json", headers)

    def version_string(self):
        return self.server_version

    def address_string(self):
        return self.client_address[0] if isinstance(self.client_address, tuple) else "unix"

    def log_request(self, code="-", size="-"):
        pass  # handle_api logs one line itself

    def log_message(self, format, *args):  # noqa: A002 - http.server's signature
        LOG.debug("%s %s", self.address_string(), fields.log_text(format % args))


class _Limited:
    """Bounded concurrency: past its share (http_limits.Slots) a client gets 503 at once instead of a thread."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 128    # socketserver's default of 5 resets a burst of leaves connecting at once

    def setup_limits(self, service, client_timeout, max_connections, ssl_context=None, head_timeout=5.0,
                     per_source=None):
        self.service = service
        self.client_timeout = client_timeout
        self.head_timeout = min(head_timeout, client_timeout)
        self.slots = http_limits.Slots(max_connections, per_source)
        self.ssl_context = ssl_context

    def handle_error(self, request, client_address):
        # socketserver prints a traceback to stderr; the operator gets one line instead.
        LOG.warning("connection dropped: %s", sys.exc_info()[1].__class__.__name__)

    def get_request(self):
        conn, addr = self.socket.accept()
        if self.ssl_context is not None:
            # The handshake runs in the handler thread, under the client timeout.
            conn = self.ssl_context.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
        return conn, addr

    def process_request(self, request, client_address):
        ticket = self.slots.admit(http_limits.source_key(client_address), request)
        if isinstance(ticket, str):
            body = encode(wire.error_body(503, "busy", ticket))
            try:
                if self.ssl_context is None:    # a TLS answer would wait for the handshake on the accept thread
                    request.settimeout(1)
                    request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                                    b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            except OSError:
                pass
            self.shutdown_request(request)
            return
        threading.Thread(target=self.process_request_thread, args=(request, client_address, ticket),
                         daemon=True).start()

    def process_request_thread(self, request, client_address, ticket):
        try:
            self.RequestHandlerClass(request, client_address, self, ticket)
        except Exception:  # noqa: BLE001 - handle_error logs one line
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            self.slots.release(ticket)


class TCPServer(_Limited, ThreadingHTTPServer):
    pass


class UnixServer(_Limited, socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    pass


def start(service, listen=None, socket_path=None, ssl_context=None, client_timeout=10.0, max_connections=256,
          head_timeout=5.0, per_source=None):
    """Bind the listeners and serve them on daemon threads; returns (servers, 'listening on ...' text)."""
    servers, where = [], []
    if listen:
        host, _sep, port = listen.rpartition(":")
        server = TCPServer((host.strip("[]") or "0.0.0.0", int(port)), Handler, bind_and_activate=True)
        server.setup_limits(service, client_timeout, max_connections, ssl_context, head_timeout, per_source)
        servers.append(server)
        bound = server.server_address
        where.append("%s://%s:%d" % ("https" if ssl_context else "http", bound[0], bound[1]))
    if socket_path:
        if os.path.exists(socket_path):
            os.unlink(socket_path)  # a stale socket from a killed run
        old = os.umask(0o117)
        try:
            server = UnixServer(socket_path, Handler)
        finally:
            os.umask(old)
        server.setup_limits(service, client_timeout, max_connections, head_timeout=head_timeout)
        servers.append(server)
        where.append("unix:" + socket_path)
    for server in servers:
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
    return servers, "listening on " + ", ".join(where)


def stop(servers):
    for server in servers:
        server.shutdown()
        server.server_close()
