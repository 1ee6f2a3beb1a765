# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The NetBird agent's state from `netbird status --json`, and what a verified mesh host still lacks.

Pure and stdlib only (tests/unit/test_layout.py): the module boma.mesh.netbird_info runs the command, this
file only reads its text, so the rules are tested without Ansible or an agent.

The JSON shape is NetBird's own: netbirdio/netbird client/status/status.go, `OutputOverview` and its
`ManagementStateOutput`, `SignalStateOutput`, `PeersStateOutput` and `PeerStateDetailOutput` JSON tags (before
the move to client/status, client/cmd/status.go `statusOutputOverview`, the same tags). `daemonStatus` and
`wireguardPort` exist only in newer agents, so both may be absent. There is no interface name in it (the
agent's `wt0` is configuration, not status): only `usesKernelInterface` and `wireguardPort`.

The fields are picked one by one, never passed through: whatever a future agent adds (an SSO session, a
profile) stays out of results and logs unless it is added here on purpose.
"""

import ipaddress
import json
import re

# client/cmd/status.go: in these states `netbird status --json` prints this text instead of JSON (rc 0).
LOGIN_TEXT = re.compile(r"^\s*Daemon status:\s*(NeedsLogin|LoginFailed|SessionExpired)\b", re.MULTILINE)
# client/internal/peer: ConnStatus "Idle" | "Connecting" | "Connected".
PEER_CONNECTED = "Connected"
# Go's zero time.Time: what lastWireguardHandshake holds for a peer never handshaken with.
ZERO_TIME = "0001-01-01T00:00:00"
ERROR_MAX = 200


class StatusError(ValueError):
    """The text is not a status this module can read; the message quotes at most the start of it."""


def _text(value):
    return value.strip() if isinstance(value, str) else ""


def _bool(value):
    return value is True


def _service(doc, name):
    """management / signal: {url, connected, error}."""
    part = doc.get(name)
    part = part if isinstance(part, dict) else {}
    return {"url": _text(part.get("url")) or None, "connected": _bool(part.get("connected")),
            "error": _text(part.get("error"))[:ERROR_MAX] or None}


def _address(cidr):
    """The host part of netbirdIp ("100.64.0.7/16"), or None when it is empty or not an address."""
    try:
        return str(ipaddress.ip_interface(cidr).ip) if cidr else None
    except ValueError:
        return None


def _handshake(value):
    text = _text(value)
    return None if not text or text.startswith(ZERO_TIME) else text


def _peer(item):
    status = _text(item.get("status"))
    return {
        "fqdn": _text(item.get("fqdn")).rstrip(".") or None,
        "ip": _text(item.get("netbirdIp")) or None,
        "status": status or None,
        "connected": status == PEER_CONNECTED,
        # "P2P" | "Relayed" when connected, "-" otherwise (status.go mapPeers)
        "connection_type": _text(item.get("connectionType")) or None,
        "last_handshake": _handshake(item.get("lastWireguardHandshake")),
    }


def _peers(doc):
    peers = doc.get("peers")
    details = peers.get("details") if isinstance(peers, dict) else None
    # Go marshals an empty slice of an unset field as null.
    return [_peer(item) for item in details or [] if isinstance(item, dict)]


def summarize(doc):
    """The picked fields of a decoded `status --json` document."""
    cidr = _text(doc.get("netbirdIp"))
    peers = _peers(doc)
    port = doc.get("wireguardPort")
    return {
        "format": "json",
        "daemon_status": _text(doc.get("daemonStatus")) or None,
        "version": _text(doc.get("daemonVersion")) or None,
        "cli_version": _text(doc.get("cliVersion")) or None,
        "management": _service(doc, "management"),
        "signal": _service(doc, "signal"),
        "ip": cidr or None,
        "address": _address(cidr),
        "fqdn": _text(doc.get("fqdn")).rstrip(".") or None,
        "public_key": _text(doc.get("publicKey")) or None,
        "interface": {"kernel": _bool(doc.get("usesKernelInterface")),
                      "wireguard_port": port if isinstance(port, int) and not isinstance(port, bool) else None},
        "peers": peers,
        "peers_total": len(peers),
        "peers_connected": sum(1 for peer in peers if peer["connected"]),
    }


def logged_out(daemon_status):
    """The state of an agent that printed the login text: nothing connected, nothing known."""
    return {
        "format": "text", "daemon_status": daemon_status, "version": None, "cli_version": None,
        "management": {"url": None, "connected": False, "error": None},
        "signal": {"url": None, "connected": False, "error": None},
        "ip": None, "address": None, "fqdn": None, "public_key": None,
        "interface": {"kernel": False, "wireguard_port": None},
        "peers": [], "peers_total": 0, "peers_connected": 0,
    }


def parse(text):
    """`netbird status --json` output -> summary; StatusError when it is neither its JSON nor its login text."""
    text = text or ""
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        return summarize(doc)
    login = LOGIN_TEXT.search(text)
    if login:
        return logged_out(login.group(1))
    shown = " ".join(text.split())[:ERROR_MAX]
    raise StatusError("printed no JSON status%s" % (": " + shown if shown else " (empty output)"))


def _name_key(name):
    return _text(name).lower().rstrip(".")


def find_peer(peers, name):
    """The peer a required name means: its FQDN, the FQDN's first label, or its mesh address."""
    key = _name_key(name)
    for peer in peers:
        fqdn = (peer["fqdn"] or "").lower()
        if key and key in (fqdn, fqdn.split(".")[0], _address(peer["ip"]) or "", (peer["ip"] or "").lower()):
            return peer
    return None


def _service_problem(label, service):
    if service["connected"]:
        return None
    return "%s not connected%s" % (label, " (%s)" % service["error"] if service["error"] else "")


def problems(summary, required_peers=()):
    """What this host still lacks to be on the mesh, each as one short phrase naming it."""
    found = []
    daemon = summary["daemon_status"]
    if daemon and daemon != "Connected":
        found.append("daemon status %s" % daemon)
    for label in ("management", "signal"):
        problem = _service_problem(label, summary[label])
        if problem:
            found.append(problem)
    if not summary["address"]:
        found.append("no mesh IP" + (" (netbirdIp %r)" % summary["ip"] if summary["ip"] else ""))
    missing = missing_peers(summary, required_peers)
    if missing:
        found.append("peers not connected: " + ", ".join("%s (%s)" % pair for pair in missing))
    return found


def missing_peers(summary, required_peers):
    """[(name, why)] for each required peer that is not connected: its status, or `not a peer`."""
    missing = []
    for name in required_peers:
        peer = find_peer(summary["peers"], name)
        if peer is None:
            missing.append((name, "not a peer"))
        elif not peer["connected"]:
            missing.append((name, peer["status"] or "no status"))
    return missing
