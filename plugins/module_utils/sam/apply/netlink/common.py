# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared netlink pieces: optional imports, constants, link/address reads, option parsing."""

import ipaddress
import os

from ...core.findings import Finding
from .options import OPTIONS, text

try:
    from pyroute2 import IPRoute, WireGuard
    from pyroute2.netlink import NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, genlmsg
    from pyroute2.netlink.exceptions import NetlinkError as Pyroute2Error
    from pyroute2.netlink.generic import GenericNetlinkSocket

    HAS_PYROUTE2 = True
    PYROUTE2_IMPORT_ERROR = None
except ImportError as _exc:  # pragma: no cover - reported by the modules
    HAS_PYROUTE2 = False
    PYROUTE2_IMPORT_ERROR = _exc
    genlmsg = object
    Pyroute2Error = OSError
    IPRoute = WireGuard = GenericNetlinkSocket = None
    NLM_F_ACK = NLM_F_DUMP = NLM_F_REQUEST = 0

# The optional pyroute2 import is guarded once, here; the section modules import these names from here.
__all__ = ["GenericNetlinkSocket", "IPRoute", "NLM_F_ACK", "NLM_F_DUMP", "NLM_F_REQUEST", "Pyroute2Error", "WireGuard",
           "genlmsg"]

OWNER = "boma.mesh"
PREFIX = "sam-"
IFNAME_MAX = 15
ROUTE_PROTO = 77  # marks routes installed by boma.mesh (not a registered protocol in rt_protos)
LO_LABEL_SUFFIX = ":sam"
TUNNEL_MODES = ("ipip", "gre", "fou")
TUNNEL_ENCAP_FOU = 1
GRE_KEY_FLAG = 0x2000
RT_TABLE_MAIN = 254
RT_SCOPE_LINK = 253
RT_SCOPE_NOWHERE = 255
IFF_UP = 1
NETNS_RUN_DIR = "/var/run/netns"
# fields whose change needs the link deleted and created again; the rest are changed in place
TUNNEL_RECREATE = ("mode", "local", "remote", "underlay", "encap_sport", "encap_dport", "key")


class NetlinkConfigError(Exception):
    """Desired state rejected before any change; ``findings`` (core.findings.Finding) name the object, the field
    and the rule (options.text words them for a module)."""

    def __init__(self, findings):
        self.findings = list(findings)
        super().__init__("; ".join(text(f) for f in self.findings))


def open_ipr(netns=None, strict=False):
    """An IPRoute handle, inside network namespace ``netns`` when given (it must exist; never created).

    ``strict``: NETLINK_GET_STRICT_CHK, so that the kernel filters a dump (addresses of one link) itself."""
    if not netns:
        return IPRoute(strict_check=True) if strict else IPRoute()
    if "/" in netns or not os.path.exists(os.path.join(NETNS_RUN_DIR, netns)):
        raise NetlinkConfigError([Finding(OPTIONS, "netns", "netns-missing",
                                          "network namespace %r does not exist" % netns)])
    return IPRoute(netns=netns, flags=0)


def _attr(msg, *path):
    for name in path:
        if msg is None:
            return None
        msg = msg.get_attr(name)
    return msg


def _link_view(link):
    """Name, index, kind, alias, up flag and kind-specific data of one RTM_NEWLINK message."""
    return {"index": link["index"], "ifname": link.get_attr("IFLA_IFNAME"),
            "kind": _attr(link, "IFLA_LINKINFO", "IFLA_INFO_KIND"),
            "alias": link.get_attr("IFLA_IFALIAS"), "up": bool(link["flags"] & IFF_UP),
            "mtu": link.get_attr("IFLA_MTU"),
            "data": _attr(link, "IFLA_LINKINFO", "IFLA_INFO_DATA"), "link": link}


def read_links(ipr):
    """{ifname: link view} for every link."""
    return {view["ifname"]: view for view in (_link_view(link) for link in ipr.get_links())}


def _ipv4_addresses(ipr, index=None):
    out = []
    for msg in ipr.get_addr(family=2, index=index) if index is not None else ipr.get_addr(family=2):
        out.append({"index": msg["index"], "address": "%s/%d" % (msg.get_attr("IFA_LOCAL")
                                                                 or msg.get_attr("IFA_ADDRESS"), msg["prefixlen"]),
                    "label": msg.get_attr("IFA_LABEL")})
    return out


def valid_ifname(name):
    return bool(name) and len(name) <= IFNAME_MAX and "/" not in name and not any(c.isspace() for c in name)


# The validators below take the object's ``resource`` (options.py: where the caller found it, OPTIONS for the
# module's own options) and the field ``path``, and append a Finding per problem to ``errors``.


def parse_interface(value, resource, path, errors):
    try:
        return str(ipaddress.ip_interface(str(value)))
    except ValueError:
        errors.append(Finding(resource, path, "ipv4-interface", "%r is not an address with prefix length" % (value,)))
        return None


def _ip(value, resource, path, errors):
    try:
        return str(ipaddress.IPv4Address(str(value)))
    except ValueError:
        errors.append(Finding(resource, path, "ipv4-address", "%r is not an IPv4 address" % (value,)))
        return None


def _port(value, resource, path, errors):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        errors.append(Finding(resource, path, "port", "%r is not a UDP port (1-65535)" % (value,)))
        return None
    return value


def resources_of_kind(resources, kind):
    """(resource, spec) for each resource of ``kind`` in a sam_materialize ``state.resources`` list."""
    out = []
    for pos, res in enumerate(resources or []):
        if isinstance(res, dict) and res.get("kind") == kind:
            spec = res.get("spec")
            out.append(("resources[%d].spec" % pos, spec if isinstance(spec, dict) else {}))
    return out
