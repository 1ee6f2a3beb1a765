# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""WireGuard interface and peers through pyroute2, with the host's X25519 key kept in a 0600 file."""

import base64
import ipaddress
import os

from ...core.findings import Finding
from .common import OWNER, NetlinkConfigError, WireGuard, _ip, _ipv4_addresses, _port, read_links
from .options import OPTIONS
from .tunnels import _index_of, _set_link_address

try:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR = None
except ImportError as _exc:  # pragma: no cover - reported by sam_wireguard
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR = _exc


def valid_wg_key(key):
    """True for the base64 text of exactly 32 bytes."""
    if not isinstance(key, str) or len(key) != 44:
        return False
    try:
        return len(base64.b64decode(key, validate=True)) == 32
    except (ValueError, TypeError):
        return False


def peer_from_spec(spec, resource, errors):
    """Normalized desired peer from a WireGuardPeer spec found at ``resource`` (options.py); a Finding per
    problem goes to ``errors``."""
    n_errors = len(errors)
    key = spec.get("publicKey")
    if not valid_wg_key(key):
        errors.append(Finding(resource, "publicKey", "wireguard-key", "not the base64 text of 32 bytes"))
    endpoint = spec.get("endpoint")
    host = port = None
    if endpoint:
        host, _sep, port_text = str(endpoint).rpartition(":")
        host = _ip(host, resource, "endpoint", errors)
        port = _port(int(port_text) if port_text.isdigit() else port_text, resource, "endpoint", errors)
    allowed = []
    for pos, net in enumerate(spec.get("allowedIPs") or []):
        try:
            allowed.append(str(ipaddress.ip_network(str(net), strict=True)))
        except ValueError:
            errors.append(Finding(resource, "allowedIPs[%d]" % pos, "ip-prefix", "%r is not a prefix" % (net,)))
    keepalive = spec.get("persistentKeepalive") or 0
    if isinstance(keepalive, bool) or not isinstance(keepalive, int) or not 0 <= keepalive < 65536:
        errors.append(Finding(resource, "persistentKeepalive", "keepalive", "%r is not 0-65535 seconds"
                              % (keepalive,)))
    if len(errors) != n_errors:
        return None
    return {"public_key": key, "endpoint": "%s:%d" % (host, port) if host else None,
            "allowed_ips": sorted(allowed), "persistent_keepalive": keepalive}


def check_peer_set(peers, resources, errors):
    """Each public key once; ``resources`` are where each peer was found (options.py)."""
    seen = {}
    for peer, resource in zip(peers, resources):
        key = peer["public_key"]
        if key in seen:
            errors.append(Finding(resource, "publicKey", "duplicate", "the public key is also at %s" % seen[key]))
        seen.setdefault(key, resource)


def public_key_of(private_b64):
    key = X25519PrivateKey.from_private_bytes(base64.b64decode(private_b64))
    return base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode("ascii")


def read_private_key(path):
    """The base64 private key stored at ``path``, or None when the file does not exist."""
    try:
        with open(path, encoding="ascii") as handle:
            text = handle.read().strip()
    except FileNotFoundError:
        return None
    if not valid_wg_key(text):
        raise NetlinkConfigError([Finding(OPTIONS, "privateKeyPath", "wireguard-key",
                                          "%s does not hold a base64 32-byte key" % path)])
    return text


def create_private_key(path):
    """Generate an X25519 key into a new 0600 file; returns the base64 private key."""
    raw = X25519PrivateKey.generate().private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    text = base64.b64encode(raw).decode("ascii")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(text + "\n")
    os.chmod(path, 0o600)
    return text


def _wg_key_text(value):
    if value is None:
        return None
    if hasattr(value, "get") and value.get("value") is not None:
        value = value.get("value")
    if isinstance(value, bytes):
        return (value if len(value) != 32 else base64.b64encode(value)).decode("ascii")
    return str(value)


def read_wireguard(interface, netns=None):
    """{'listen_port', 'public_key', 'peers': {public_key: peer}} of a WireGuard link (no private key)."""
    wg = WireGuard(netns=netns, flags=0) if netns else WireGuard()
    try:
        (msg,) = wg.info(interface)[:1]
        peers = {}
        for peer in msg.get_attr("WGDEVICE_A_PEERS") or []:
            key = _wg_key_text(peer.get_attr("WGPEER_A_PUBLIC_KEY"))
            endpoint = peer.get_attr("WGPEER_A_ENDPOINT")
            allowed = [a.get("addr") for a in peer.get_attr("WGPEER_A_ALLOWEDIPS") or [] if a.get("addr")]
            peers[key] = {"public_key": key,
                          "endpoint": "%s:%d" % (endpoint["addr"], endpoint["port"]) if endpoint else None,
                          "allowed_ips": sorted(str(ipaddress.ip_network(a, strict=False)) for a in allowed),
                          "persistent_keepalive": peer.get_attr("WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL") or 0}
        return {"listen_port": msg.get_attr("WGDEVICE_A_LISTEN_PORT") or None,
                "public_key": _wg_key_text(msg.get_attr("WGDEVICE_A_PUBLIC_KEY")), "peers": peers}
    finally:
        wg.close()


def plan_wireguard(ipr, netns, interface, desired, state="present", purge=False):
    """``desired``: {'public_key', 'listen_port', 'address', 'peers': [peer]}; no private key in any action."""
    links = read_links(ipr)
    have = links.get(interface)
    if have is not None and (have["alias"] != OWNER or have["kind"] != "wireguard"):
        raise NetlinkConfigError([Finding(OPTIONS, "interface", "foreign-link", "%s exists and is not a WireGuard "
                                          "link managed by %s" % (interface, OWNER))])
    if state == "absent":
        if have is None:
            return []
        return [{"action": "delete", "kind": "wireguard", "name": interface, "before": {"ifname": interface},
                 "after": None}]
    actions = []
    before = {"listen_port": None, "public_key": None, "peers": {}, "address": None}
    if have is None:
        actions.append({"action": "create", "kind": "wireguard", "name": interface, "before": None,
                        "after": {"ifname": interface, "owner": OWNER}})
    else:
        before.update(read_wireguard(interface, netns))
        own = [a["address"] for a in _ipv4_addresses(ipr, have["index"])]
        before["address"] = own[0] if len(own) == 1 else (own or None)
    dev_before = {"listen_port": before["listen_port"], "public_key": before["public_key"],
                  "address": before["address"], "up": bool(have and have["up"])}
    dev_after = {"listen_port": desired["listen_port"] if desired["listen_port"] is not None
                 else before["listen_port"], "public_key": desired["public_key"],
                 "address": desired["address"] if desired["address"] is not None else before["address"], "up": True}
    if dev_before != dev_after:
        actions.append({"action": "update" if have else "create", "kind": "wireguard-device", "name": interface,
                        "before": dev_before if have else None, "after": dev_after})
    wanted = {p["public_key"] for p in desired["peers"]}
    for peer in desired["peers"]:
        old = before["peers"].get(peer["public_key"])
        if old != peer:
            actions.append({"action": "update" if old else "create", "kind": "wireguard-peer",
                            "name": peer["public_key"], "before": old, "after": peer})
    if purge:
        for key, old in sorted(before["peers"].items()):
            if key not in wanted:
                actions.append({"action": "delete", "kind": "wireguard-peer", "name": key, "before": old,
                                "after": None})
    return actions


def _apply_wireguard(ipr, action, links, netns, private_key, interface):
    kind, what = action["kind"], action["action"]
    if kind == "wireguard":
        if what == "delete":
            ipr.link("del", index=links[interface]["index"])
        else:
            ipr.link("add", ifname=interface, kind="wireguard")
            ipr.link("set", index=_index_of(ipr, interface), ifalias=OWNER)
        return
    index = _index_of(ipr, interface)
    wg = WireGuard(netns=netns, flags=0) if netns else WireGuard()
    try:
        if kind == "wireguard-device":
            after = action["after"]
            wg.set(interface, private_key=private_key, listen_port=after["listen_port"])
            if after["address"]:
                _set_link_address(ipr, index, after["address"])
            ipr.link("set", index=index, state="up")
        elif what == "delete":
            wg.set(interface, peer={"public_key": action["name"], "remove": True})
        else:
            peer = action["after"]
            spec = {"public_key": peer["public_key"], "allowed_ips": peer["allowed_ips"],
                    "replace_allowed_ips": True, "persistent_keepalive": peer["persistent_keepalive"]}
            if peer["endpoint"]:
                host, _sep, port = peer["endpoint"].rpartition(":")
                spec.update(endpoint_addr=host, endpoint_port=int(port))
            wg.set(interface, peer=spec)
    finally:
        wg.close()
