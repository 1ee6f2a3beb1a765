# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The generic-netlink ``fou`` family (not in pyroute2 0.9.7): list, open and close FOU receive ports."""

import errno

from ...core.findings import Finding
from .common import (
    NLM_F_ACK,
    NLM_F_DUMP,
    NLM_F_REQUEST,
    GenericNetlinkSocket,
    NetlinkConfigError,
    Pyroute2Error,
    genlmsg,
)

FOU_CMD_ADD, FOU_CMD_DEL, FOU_CMD_GET = 1, 2, 3
FOU_ENCAP_DIRECT = 1


class foumsg(genlmsg):  # pylint: disable=invalid-name
    """Generic netlink message of the kernel's ``fou`` family (include/uapi/linux/fou.h)."""

    prefix = "FOU_ATTR_"
    nla_map = (
        ("FOU_ATTR_UNSPEC", "none"),
        ("FOU_ATTR_PORT", "be16"),
        ("FOU_ATTR_AF", "uint8"),
        ("FOU_ATTR_IPPROTO", "uint8"),
        ("FOU_ATTR_TYPE", "uint8"),
        ("FOU_ATTR_REMCSUM_NOPARTIAL", "flag"),
        ("FOU_ATTR_LOCAL_V4", "ip4addr"),
        ("FOU_ATTR_LOCAL_V6", "ip6addr"),
        ("FOU_ATTR_PEER_V4", "ip4addr"),
        ("FOU_ATTR_PEER_V6", "ip6addr"),
        ("FOU_ATTR_PEER_PORT", "be16"),
        ("FOU_ATTR_IFINDEX", "int32"),
    )


def _fou_socket(netns):
    sock = GenericNetlinkSocket(netns=netns, flags=0) if netns else GenericNetlinkSocket()
    try:
        sock.bind("fou", foumsg)
    except Pyroute2Error as exc:
        sock.close()
        if exc.code == errno.ENOENT:
            raise NetlinkConfigError([Finding("fou", "", "fou-module", "the kernel has no generic netlink family "
                                              "'fou' (load the module: modprobe fou)")]) from exc
        raise
    return sock


def _fou_msg(cmd, port=None):
    msg = foumsg()
    msg["cmd"] = cmd
    msg["version"] = 1
    if port is not None:
        msg["attrs"] = [["FOU_ATTR_PORT", port], ["FOU_ATTR_AF", 2], ["FOU_ATTR_IPPROTO", 4],
                        ["FOU_ATTR_TYPE", FOU_ENCAP_DIRECT]]
    return msg


def fou_ports(netns=None):
    """Local FOU receive ports (IPv4, ipproto 4) as a set of ints."""
    sock = _fou_socket(netns)
    try:
        ports = set()
        for msg in sock.nlm_request(_fou_msg(FOU_CMD_GET), msg_type=sock.prid,
                                    msg_flags=NLM_F_REQUEST | NLM_F_DUMP):
            if msg.get_attr("FOU_ATTR_IPPROTO") in (4, None) and msg.get_attr("FOU_ATTR_AF") in (2, None):
                ports.add(msg.get_attr("FOU_ATTR_PORT"))
        return ports
    finally:
        sock.close()


def fou_port(netns, port, add):
    """Add or delete a FOU receive port; EEXIST/EADDRINUSE (add) and ENOENT (delete) count as done."""
    sock = _fou_socket(netns)
    try:
        tuple(sock.nlm_request(_fou_msg(FOU_CMD_ADD if add else FOU_CMD_DEL, port), msg_type=sock.prid,
                               msg_flags=NLM_F_REQUEST | NLM_F_ACK))  # a generator: consume it to send
    except Pyroute2Error as exc:
        done = (errno.EEXIST, errno.EADDRINUSE) if add else (errno.ENOENT, errno.ESRCH)
        if exc.code not in done:
            raise
    finally:
        sock.close()
