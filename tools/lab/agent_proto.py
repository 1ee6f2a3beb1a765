# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Wire format between the lab's controller side (vm.py, the lab_vm connection) and guest_agent.py.

One request per TCP connection: a JSON header line, then ``len`` bytes of body (stdin or file content).
One response: a JSON header line ``{"rc": int, "out": n, "err": m}``, then n bytes of stdout, m of stderr.
The header carries a shared token (a 0600 file on the 9p share both sides read); the port is forwarded by
qemu's user network to 127.0.0.1 only. Stdlib only: the connection plugin and the guest import it.
"""

import hmac
import json
import socket

MAX_HEADER = 1 << 20


def _read_line(sock_file):
    line = sock_file.readline(MAX_HEADER)
    if not line.endswith(b"\n"):
        raise ConnectionError("lab agent: truncated header")
    return json.loads(line)


def _read_exact(sock_file, size):
    data = sock_file.read(size) if size else b""
    if len(data) != size:
        raise ConnectionError("lab agent: truncated body (%d of %d bytes)" % (len(data), size))
    return data


def read_request(sock_file):
    header = _read_line(sock_file)
    return header, _read_exact(sock_file, int(header.get("len", 0)))


def token_ok(header, token):
    return hmac.compare_digest(str(header.get("token", "")).encode(), token.encode())


def write_response(sock, rc, out=b"", err=b""):
    sock.sendall(json.dumps({"rc": rc, "out": len(out), "err": len(err)}).encode() + b"\n" + out + err)


def request(address, token, op, body=b"", timeout=None, **fields):
    """Send one request; returns (rc, stdout bytes, stderr bytes). Raises OSError/ConnectionError."""
    header = dict(fields, token=token, op=op, len=len(body))
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(json.dumps(header).encode() + b"\n" + body)
        with sock.makefile("rb") as reply:
            head = _read_line(reply)
            out = _read_exact(reply, int(head["out"]))
            err = _read_exact(reply, int(head["err"]))
    return int(head["rc"]), out, err
