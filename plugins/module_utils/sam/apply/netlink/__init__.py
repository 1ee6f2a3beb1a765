# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's only netlink code: tunnels, addresses, routes and WireGuard through pyroute2.

Every entry point follows the same shape: normalize + validate the desired objects (pure, no kernel
access), read the kernel, ``plan_*`` a list of actions ``{action, kind, name, before, after}``, then
``apply_actions`` them (check mode stops after the plan).  Managed links carry IFLA_IFALIAS ``boma.mesh``;
managed routes carry protocol ``ROUTE_PROTO``; managed loopback addresses carry the label ``<lo>:sam``.
Only objects with these marks are ever removed.

Sections: ``common`` (imports, constants, link/address reads), ``fou`` (generic netlink), ``tunnels``,
``routes`` (and loopback addresses), ``wireguard``; this file dispatches ``apply_actions``.  Problems are
``core.findings.Finding`` objects; ``options`` holds the one table from their fields to the modules' options.
"""

from .common import (
    HAS_PYROUTE2,
    IFNAME_MAX,
    OWNER,
    PYROUTE2_IMPORT_ERROR,
    ROUTE_PROTO,
    NetlinkConfigError,
    Pyroute2Error,
    open_ipr,
    parse_interface,
    read_links,
    resources_of_kind,
    valid_ifname,
)
from .fou import fou_port, fou_ports
from .options import OPTION_NAMES, OPTIONS, as_dict, location, text
from .routes import _apply_route, check_route_set, loopback_from_list, plan_routes, read_routes, route_from_spec
from .tunnels import _apply_tunnel, check_tunnel_set, plan_tunnels, read_tunnels, tunnel_from_spec
from .wireguard import (
    CRYPTOGRAPHY_IMPORT_ERROR,
    HAS_CRYPTOGRAPHY,
    _apply_wireguard,
    check_peer_set,
    create_private_key,
    peer_from_spec,
    plan_wireguard,
    public_key_of,
    read_private_key,
    read_wireguard,
    valid_wg_key,
)

# The modules use this package as one namespace (netlink.plan_tunnels, ...).
__all__ = [
    "CRYPTOGRAPHY_IMPORT_ERROR", "HAS_CRYPTOGRAPHY", "HAS_PYROUTE2", "IFNAME_MAX", "NetlinkConfigError", "OPTIONS",
    "OPTION_NAMES", "OWNER", "PYROUTE2_IMPORT_ERROR", "Pyroute2Error", "ROUTE_PROTO", "apply_actions",
    "check_peer_set", "check_route_set", "check_tunnel_set", "create_private_key", "diff_of", "fail_findings",
    "fou_ports", "location", "loopback_from_list", "module_result", "open_ipr", "parse_interface", "peer_from_spec",
    "plan_routes", "plan_tunnels", "plan_wireguard", "public_actions", "public_key_of", "read_links",
    "read_private_key", "read_routes", "read_tunnels", "read_wireguard", "resources_of_kind", "route_from_spec",
    "text", "tunnel_from_spec", "valid_ifname", "valid_wg_key",
]


def apply_actions(ipr, actions, netns=None, private_key=None, interface=None, links=None):
    """Carry out a plan in order.  Raises Pyroute2Error / NetlinkConfigError on a kernel refusal.

    ``links``: the link views the plan was made from, when the caller read only those (no dump then)."""
    if links is None:
        links = read_links(ipr) if actions else {}
    for action in actions:
        if action["kind"] == "tunnel":
            _apply_tunnel(ipr, action, links)
        elif action["kind"] == "fou-port":
            fou_port(netns, int(action["name"]), action["action"] == "create")
        elif action["kind"] in ("route", "address"):
            _apply_route(ipr, action, links)
        else:
            _apply_wireguard(ipr, action, links, netns, private_key, interface)


def public_actions(actions):
    """Plan without internal fields, for the module result."""
    return [{k: v for k, v in a.items() if k != "desired"} for a in actions]


def diff_of(actions):
    before, after = {}, {}
    for action in actions:
        key = "%s %s" % (action["kind"], action["name"])
        if action["before"] is not None:
            before[key] = action["before"]
        if action["after"] is not None:
            after[key] = action["after"]
    return {"before": before, "after": after}


def module_result(module, actions, **extra):
    """exit_json keyword arguments: truthful ``changed``, the plan, and before/after in diff mode."""
    out = {"changed": bool(actions), "actions": public_actions(actions)}
    out.update(extra)
    if module._diff:  # pylint: disable=protected-access
        out["diff"] = diff_of(actions)
    return out


def fail_findings(module, name, what, findings, **extra):
    """Fail module ``name`` (a column of options.OPTION_NAMES): one ``location [rule] message`` line per Finding
    in ``msg`` and ``errors``, each naming the option the user set or the item of ``resources``; the Findings
    themselves (with that ``location``) in ``findings``."""
    lines = [text(f, name) for f in findings]
    module.fail_json(msg="%d error(s) in the desired %s, nothing changed:\n%s" % (len(lines), what, "\n".join(lines)),
                     errors=lines, findings=[as_dict(f, name) for f in findings], **extra)
