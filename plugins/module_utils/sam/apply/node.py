# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Apply a node's materialized state to this host: FRR (validated candidate, frr-reload) and netlink.

What the playbook does with sam_bgp, sam_tunnel, sam_route and sam_wireguard, in one process: the RR
daemon's reconcile loop (rr/reconcile.py) calls it whenever the admitted claims change.  The same helpers
as the modules are used (frr.apply: never a bgpd restart; netlink: only objects boma.mesh marked are ever
removed), so both paths converge on the same host state.
"""

import logging
import os
import subprocess
import tempfile

from ..core.findings import Finding
from ..core.render.frr import render_frr
from ..core.render.frr_delta import DeltaUnsupported
from . import netlink
from .frr import Frr, FrrError, apply_delta, persist
from .frr import apply as frr_apply

LOG = logging.getLogger("samctl.apply")
VTYSH = "/usr/bin/vtysh"            # sam_bgp's default: frr-reload needs the directory of vtysh as --bindir
COMMAND_TIMEOUT = 120               # frr-reload on a large RR config takes seconds, never minutes


class ApplyError(ValueError):
    """Nothing (or only part) could be applied; the message says which part and why."""


def run_command(argv):
    """AnsibleModule.run_command's contract for Frr: argv -> (rc, stdout, stderr); a failure is an rc."""
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=COMMAND_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        return 124, "", "%s timed out after %d s" % (argv[0], COMMAND_TIMEOUT)
    except OSError as exc:
        return 127, "", "%s: %s" % (argv[0], exc.strerror or exc)
    return proc.returncode, proc.stdout, proc.stderr


class FrrMemory:
    """What one long-running process (the RR's reconcile loop, the leaf agent) last applied to FRR and verified.

    With it apply_bgp sends only the delta from that candidate (apply/frr.apply_delta, issue 19); without a
    last candidate (start-up, after any failure) or with ``full`` it runs the whole-configuration path
    (frr-reload.py), which also repairs whatever a failed delta or a hand edit left.  ``on_fallback(reason)``
    is told when a delta failed and the full path ran instead (the RR writes an audit line).
    """

    def __init__(self, on_fallback=None):
        self.candidate = None      # render_frr output last applied and verified
        self.host_lines = None     # the running config's host-owned lines, for frr.conf (from the last full run)
        self.on_fallback = on_fallback
        self.full_runs = self.delta_runs = self.fallbacks = 0

    def forget(self):
        self.candidate = None


def apply_bgp(state, vty_socket, confdir, options=None, memory=None, full=False):
    # sam_bgp's default options are render_frr's defaults; the role passes the same bfd to both.
    candidate = render_frr(state, options)
    leaves = sum(len(r["spec"].get("admitted", ())) for r in state["resources"] if r["kind"] == "BGPDynamicPeer")
    if memory is not None and memory.candidate is not None and not full:
        summary = _apply_delta(memory, candidate, vty_socket, confdir, leaves)
        if summary is not None:
            return summary
    try:
        if _writable_dir(confdir):
            result = _apply_frr(candidate, vty_socket, confdir, os.path.join(confdir, "frr.conf"))
        else:
            # frr-reload needs an existing --confdir and writes the running config there ("write"):
            # give it a scratch one rather than a system /etc/frr we were not allowed to change.
            with tempfile.TemporaryDirectory(prefix="boma-reconcile-") as scratch:
                result = _apply_frr(candidate, vty_socket, scratch, None)
    except Exception:
        if memory is not None:
            memory.forget()
        raise
    if memory is not None:
        memory.candidate, memory.full_runs = candidate, memory.full_runs + 1
        memory.host_lines = result["candidate"][:len(result["candidate"]) - len(candidate)]
    if result["deletes"] or result["adds"]:
        LOG.debug("reconcile bgp delta: -%s +%s", result["deletes"], result["adds"])
        return "bgp changed +%d -%d lines (%d leaves)" % (len(result["adds"]), len(result["deletes"]), leaves)
    return "bgp %s (%d leaves)" % ("persisted" if result["changed"] else "unchanged", leaves)


def _apply_delta(memory, candidate, vty_socket, confdir, leaves):
    """The delta path; None when the full path must run (unsupported change, refused, failed or mismatched)."""
    frr = Frr(run_command, vtysh=VTYSH, vty_socket=vty_socket, confdir=confdir)
    try:
        result = apply_delta(frr, memory.candidate, candidate)
    except DeltaUnsupported as exc:
        LOG.info("bgp: full reload (%s)", exc)
        return None
    except FrrError as exc:
        memory.fallbacks += 1
        memory.forget()
        LOG.warning("bgp delta failed, full reload: %s", exc)
        if memory.on_fallback:
            memory.on_fallback(str(exc))
        return None
    memory.candidate, memory.delta_runs = candidate, memory.delta_runs + 1
    if result["changed"] and memory.host_lines is not None and _writable_dir(confdir):
        persist(os.path.join(confdir, "frr.conf"), memory.host_lines + candidate)
    if result["changed"]:
        return "bgp delta +%d -%d lines, %d objects verified (%d leaves)" % (
            len(result["adds"]), len(result["deletes"]), result["touched"], leaves)
    return "bgp unchanged (%d leaves)" % leaves


def _apply_frr(candidate, vty_socket, confdir, persist_path):
    frr = Frr(run_command, vtysh=VTYSH, vty_socket=vty_socket, confdir=confdir)
    return frr_apply(frr, candidate, persist_path=persist_path)


def _writable_dir(path):
    return bool(path) and os.path.isdir(path) and os.access(path, os.W_OK | os.X_OK)


def _wireguard_plan(ipr, resources, wireguard, errors):
    """(plan, private key, interface) for the WireGuard peers of the admitted claims, as sam_wireguard with purge.

    None when the state has no WireGuardPeer: the interface then keeps its peers until the next playbook run
    (the role owns the interface; the service only follows claims admitted or revoked in between).
    """
    specs = list(netlink.resources_of_kind(resources, "WireGuardPeer"))
    if not specs:
        return None
    peers = [peer for peer in (netlink.peer_from_spec(spec, resource, errors) for resource, spec in specs) if peer]
    interface, local = specs[0][1].get("interface"), specs[0][1].get("localAddress")
    private = netlink.read_private_key(wireguard.get("key_file")) if wireguard.get("key_file") else None
    if private is None:
        errors.append(Finding("WireGuardPeer", "", "private-key-missing", "no private key (--wg-key-file %s; the "
                              "sam_rr role creates it)" % wireguard.get("key_file")))
        return None
    address = netlink.parse_interface("%s/32" % local, "WireGuardPeer", "localAddress", errors) if local else None
    if errors:
        return None
    desired = {"public_key": netlink.public_key_of(private), "listen_port": wireguard.get("listen_port"),
               "address": address, "peers": peers}
    return netlink.plan_wireguard(ipr, None, interface, desired, "present", True), private, interface


def apply_dataplane(state, wireguard=None):
    """WireGuard peers, tunnels, endpoint routes and owned loopback /32s, as the role's modules with purge: true."""
    resources = state["resources"]
    errors, tunnels, where, routes = [], [], [], []
    for resource, spec in netlink.resources_of_kind(resources, "TunnelInterface"):
        tun = netlink.tunnel_from_spec(spec, resource, errors)
        if tun:
            tunnels.append(tun)
            where.append(resource)
    netlink.check_tunnel_set(tunnels, where, errors)
    for resource, spec in netlink.resources_of_kind(resources, "IPv4Route"):
        route = netlink.route_from_spec(spec, resource, errors)
        if route:
            routes.append(route)
    owned = [r["spec"].get("exportPrefixes") or [] for r in resources if r["kind"] == "BGPRouter"]
    loopbacks = netlink.loopback_from_list(owned[0] if owned else [], "BGPRouter", "exportPrefixes", errors)
    if errors:
        raise netlink.NetlinkConfigError(errors)
    ipr = netlink.open_ipr()            # this process's namespace: the service runs where FRR runs
    try:
        # WireGuard, then tunnels (ipip over WireGuard starts at its address), then the routes pointing at
        # both: the order of the role's tasks.
        wg = _wireguard_plan(ipr, resources, wireguard or {}, errors)
        if errors:
            raise netlink.NetlinkConfigError(errors)
        if wg:
            netlink.apply_actions(ipr, wg[0], None, private_key=wg[1], interface=wg[2])
        tunnel_actions = netlink.plan_tunnels(ipr, tunnels, "present", True)
        netlink.apply_actions(ipr, tunnel_actions)
        route_actions = netlink.plan_routes(ipr, routes, loopbacks, "present", True)
        netlink.apply_actions(ipr, route_actions)
    finally:
        ipr.close()
    counts = [_count("tunnels", tunnel_actions, "tunnel"), _count("routes", route_actions, "route")]
    return counts + ([_count("wireguard peers", wg[0], "wireguard-peer")] if wg else [])


def _count(label, actions, kind):
    mine = [a for a in actions if a["kind"] == kind]
    added = sum(1 for a in mine if a["action"] in ("create", "update"))
    removed = sum(1 for a in mine if a["action"] == "delete")
    return "%s +%d -%d" % (label, added, removed)
