#!/usr/bin/python
# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Ansible modules keep DOCUMENTATION, EXAMPLES and RETURN above the imports:
# ruff: noqa: E402

from __future__ import annotations

DOCUMENTATION = r"""
module: sam_dynamic_peer_info
short_description: Report the BGP dynamic peers of an FRR or GoBGP route reflector against the admitted SAM claims
version_added: 0.1.0
description:
  - Reads the state of one BGP dynamic-peer group (C(bgp listen range ... peer-group ...)) from a running FRR 8.4
    C(bgpd) with C(vtysh) and compares it with the admitted claims of a C(BGPDynamicPeer) rendered by
    M(boma.mesh.sam_materialize).
  - Reports each peer of the group (dynamic or not) with its session state, uptime, the claim it maps to by its
    address, and its accepted, received and rejected IPv4 unicast prefix counts and rejected prefixes.
  - Reports the dynamic peers that match no admitted claim (RV(status.unmatched_peers)) and the admitted claims
    without an established session (RV(status.missing_peers)).
  - When the C(BGPDynamicPeer) spec holds C(allowedPrefixes), each rejected prefix is explained with the rule of
    the SAM route admission that rejects it (for example C(default-route), C(other-claim), C(unclaimed));
    C(admissible) marks a prefix bgpd rejected although the desired state admits it.
  - Runs one C(vtysh -c 'show ... json') command per output, as an argument list (never through a shell), namely
    C(show bgp ipv4 unicast summary json), C(show bgp neighbors json), C(show bgp peer-group json), then
    C(show bgp ipv4 unicast neighbors ADDR received-routes json) and C(... filtered-routes json) for each
    peer of the group.
  - Received and rejected routes are only known when the group has C(soft-reconfiguration inbound);
    without it they are reported as C(null) with a warning in RV(status.warnings), and the accepted counts stay.
  - Changes nothing on the managed host.
author:
  - boma.mesh maintainers (@boma)
extends_documentation_fragment:
  - boma.mesh.attributes
  - boma.mesh.read_only
attributes:
  idempotent:
    support: full
    details:
      - Never changes anything, so C(changed) is always false.
      - The report is read from the running C(bgpd) on every run, so two runs may return different sessions and counts.
requirements:
  - FRR 8.4 or later with a running C(bgpd), and C(vtysh) on the managed host.
options:
  peer_group:
    description:
      - Name of the BGP peer group the listen ranges are bound to (the C(peerGroup) of the C(BGPDynamicPeer)).
      - When O(dynamic_peer) has a C(peerGroup), it must be the same; the module fails otherwise.
    type: str
    required: true
  admitted:
    description:
      - The admitted claims, as C(spec.admitted) of a C(BGPDynamicPeer), each with C(neighbor) (the claim's tunnel
        address), C(claimRef), C(leafID) and C(prefixes).
      - Mutually exclusive with O(dynamic_peer). Without either, every dynamic peer is reported unmatched.
    type: list
    elements: dict
  dynamic_peer:
    description:
      - A whole C(BGPDynamicPeer) resource (C(kind), C(metadata), C(spec)) of the materialized RR state
        (C(boma.mesh.sam_materialize)), or only its C(spec).
      - Its C(admitted), C(listenRanges), C(allowedPrefixes) and C(allowedPrefixLengthMin)/C(allowedPrefixLengthMax)
        are used.
      - Mutually exclusive with O(admitted).
    type: dict
  vty_socket:
    description:
      - Directory of the daemons' vty sockets, passed to C(vtysh) as C(--vty_socket), for daemons that do not use
        C(/var/run/frr) (for example one FRR per network namespace).
    type: path
  vtysh:
    description:
      - The C(vtysh) command, as a name looked up in E(PATH) or a path.
    type: path
    default: vtysh
  daemon:
    description:
      - The RR's BGP daemon. V(gobgp) reads C(gobgp -j neighbor), C(gobgp -j global rib -a ipv4) and each group
        member's C(adj-in) (every route it sent; what the RIB lacks was rejected), with the same result.
    type: str
    choices: [frr, gobgp]
    default: frr
  gobgp:
    description: The C(gobgp) CLI (O(daemon=gobgp)).
    type: path
    default: /usr/bin/gobgp
  api_target:
    description: O(daemon=gobgp) - gobgp's C(--target) (C(unix:///PATH)) instead of 127.0.0.1:O(api_port).
    type: str
  api_port:
    description: O(daemon=gobgp) - gobgpd's gRPC port.
    type: int
    default: 50051
  gobgp_config:
    description:
      - O(daemon=gobgp) - gobgpd's configuration file, read for the group's dynamic-neighbors ranges
        (RV(status.source_prefixes)), which gobgp does not list. Without it they are reported unknown.
    type: path
notes:
  - The module fails, naming the command, when C(vtysh) is missing, when C(bgpd) is not running or when a command
    does not print JSON.
  - Run it inside the network namespace of C(bgpd) (for example with C(ip netns exec)) when C(bgpd) runs in one;
    O(vty_socket) only selects the socket directory.
seealso:
  - module: boma.mesh.sam_validate
"""

EXAMPLES = r"""
- name: Compare the dynamic peers of bgpd with the admitted claims of the materialized RR state
  boma.mesh.sam_dynamic_peer_info:
    peer_group: cloudedge-leaves
    dynamic_peer: "{{ rr_state.resources | selectattr('kind', 'equalto', 'BGPDynamicPeer') | first }}"
  vars:
    rr_state: "{{ lookup('ansible.builtin.file', 'states/rr-a.json') | ansible.builtin.from_json }}"
  register: peers

- name: Fail when a leaf announced a route that bgpd rejected
  ansible.builtin.assert:
    that: peers.rejected_total == 0
    fail_msg: "{{ peers.status.rejected_summary.by_prefix }}"

- name: Ask a bgpd with its own socket directory, with the claims only
  boma.mesh.sam_dynamic_peer_info:
    peer_group: cloudedge-leaves
    admitted:
      - claimRef: SAMEnrollmentClaim/leaf-b
        leafID: leaf-b
        neighbor: 10.255.0.32
        prefixes: [10.77.60.32/32]
    vty_socket: /run/frr-rr
"""

RETURN = r"""
discovered_peers:
  description: The peers of the group, as RV(status.discovered_peers).
  returned: success
  type: list
  elements: dict
  sample: []
accepted_total:
  description: Prefixes accepted from all the peers of the group after the inbound policy.
  returned: success
  type: int
  sample: 1
rejected_total:
  description: Prefixes the inbound policy rejected, over all the peers of the group (0 when unknown).
  returned: success
  type: int
  sample: 7
status:
  description: The status of the dynamic-peer group.
  returned: success
  type: dict
  contains:
    peer_group:
      description: The peer group.
      type: str
      sample: cloudedge-leaves
    peer_group_found:
      description: Whether bgpd knows the peer group.
      type: bool
      sample: true
    source_prefixes:
      description: The listen ranges bound to the group, as bgpd reports them.
      type: list
      elements: str
      sample: ["10.255.0.0/20"]
    listen_ranges_missing:
      description: The C(listenRanges) of O(dynamic_peer) that bgpd does not report for the group.
      type: list
      elements: str
      sample: []
    discovered_peers:
      description: The peers of the group, by address.
      type: list
      elements: dict
      contains:
        address:
          description: The peer address.
          type: str
          sample: 10.255.0.32
        state:
          description: The BGP session state (C(Established), C(Active), ...).
          type: str
          sample: Established
        dynamic:
          description: Whether the peer was accepted through a listen range.
          type: bool
          sample: true
        uptime:
          description: The session uptime (or time since down) as bgpd prints it.
          type: str
          sample: "00:12:03"
        listen_range:
          description: The listen range the peer was accepted through.
          type: str
          sample: 10.255.0.0/20
        hostname:
          description: The hostname the peer announced.
          type: str
          sample: leaf-b
        accepted:
          description: Prefixes accepted after the inbound policy (C(pfxRcd)).
          type: int
          sample: 1
        received:
          description: Prefixes received before the inbound policy (C(null) without soft-reconfiguration inbound).
          type: int
          sample: 8
        rejected:
          description: Prefixes the inbound policy rejected (C(null) when unknown).
          type: int
          sample: 7
        claimRef:
          description: The admitted claim whose tunnel address is the peer address (C(null) when none).
          type: str
          sample: SAMEnrollmentClaim/leaf-b
        leafID:
          description: The leaf ID of that claim.
          type: str
          sample: leaf-b
        rejected_routes:
          description: The rejected prefixes.
          type: list
          elements: str
          sample: ["0.0.0.0/0", "10.77.60.31/32"]
        rejected_reasons:
          description: The route admission rule rejecting each rejected prefix, when C(allowedPrefixes) is known.
          type: dict
          sample: {"0.0.0.0/0": "default-route", "10.77.60.31/32": "other-claim"}
        warnings:
          description: What bgpd said instead of routes (for example no soft-reconfiguration inbound).
          type: list
          elements: str
          sample: []
    accepted_total:
      description: As RV(accepted_total).
      type: int
      sample: 1
    rejected_total:
      description: As RV(rejected_total).
      type: int
      sample: 7
    rejected_summary:
      description: C(by_prefix), each rejected prefix with the peers that announced it, and C(by_reason),
        the count of rejected routes by route admission rule.
      type: dict
      sample: {"by_prefix": {"0.0.0.0/0": ["10.255.0.32"]}, "by_reason": {"default-route": 1}}
    unmatched_peers:
      description: Addresses of the dynamic peers that match no admitted claim.
      type: list
      elements: str
      sample: []
    missing_peers:
      description: The admitted claims with no established session (C(claimRef), C(leafID), C(neighbor) and
        C(state), C(null) when bgpd has no such peer).
      type: list
      elements: dict
      sample: [{"claimRef": "SAMEnrollmentClaim/leaf-a", "leafID": "leaf-a", "neighbor": "10.255.0.31",
                "state": null}]
    warnings:
      description: The peers' warnings, each prefixed with the peer address.
      type: list
      elements: str
      sample: []
"""

import ipaddress
import json
import os
import re

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.boma.mesh.plugins.module_utils.sam.apply.gobgp import Gobgpd, GobgpError, peer_info_outputs
from ansible_collections.boma.mesh.plugins.module_utils.sam.core.bgp_status import dynamic_peer_status
from ansible_collections.boma.mesh.plugins.module_utils.sam.core.bgp_status_gobgp import gobgp_peer_status

SUMMARY = "show bgp ipv4 unicast summary json"
NEIGHBORS = "show bgp neighbors json"
PEER_GROUP = "show bgp peer-group json"
RECEIVED = "show bgp ipv4 unicast neighbors %s received-routes json"
FILTERED = "show bgp ipv4 unicast neighbors %s filtered-routes json"
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")  # an IP address or an interface name


class InputError(Exception):
    """A module option or vtysh problem; the message names the option or command and the rule."""


def spec_of(params):
    """The BGPDynamicPeer spec to compare with, from dynamic_peer or admitted, with peerGroup set."""
    spec = {}
    if params["dynamic_peer"] is not None:
        peer = params["dynamic_peer"]
        where = "dynamic_peer"
        if "spec" in peer:
            peer, where = peer["spec"], "dynamic_peer.spec"
            if not isinstance(peer, dict):
                raise InputError("%s [type] must be a mapping" % where)
        spec = dict(peer)
        if spec.get("peerGroup") not in (None, params["peer_group"]):
            raise InputError("%s.peerGroup [peer-group] %r differs from peer_group %r"
                             % (where, spec["peerGroup"], params["peer_group"]))
        admitted, where = spec.get("admitted") or [], where + ".admitted"
    else:
        admitted, where = params["admitted"] or [], "admitted"
    if not isinstance(admitted, list):
        raise InputError("%s [type] must be a list" % where)
    for index, item in enumerate(admitted):
        neighbor = item.get("neighbor") if isinstance(item, dict) else None
        try:
            ipaddress.ip_address(str(neighbor))
        except ValueError:
            raise InputError("%s[%d].neighbor [address] %r is not an IP address" % (where, index, neighbor)) from None
    spec.update(peerGroup=params["peer_group"], admitted=admitted)
    return spec


def vtysh_argv(module):
    """The argv prefix [vtysh, --vty_socket, DIR]."""
    vtysh = module.params["vtysh"]
    if os.sep in vtysh:
        path = vtysh if os.path.isfile(vtysh) and os.access(vtysh, os.X_OK) else None
    else:
        path = module.get_bin_path(vtysh)
    if path is None:
        raise InputError("vtysh [missing] %r was not found or is not executable; install FRR or set vtysh" % vtysh)
    argv = [path]
    if module.params["vty_socket"] is not None:
        argv += ["--vty_socket", module.params["vty_socket"]]
    return argv


def show(module, argv, command):
    """Parsed JSON of one vtysh command; InputError naming the command on failure."""
    rc, out, err = module.run_command(argv + ["-c", command], check_rc=False)
    text = " ".join((err.strip() or out.strip()).split())[:300]
    if rc != 0:
        hint = ""
        if "failed to connect" in text:
            where = module.params["vty_socket"] or "/var/run/frr"
            hint = "; no FRR daemon answers in the vty socket directory %s" % where
        raise InputError("vtysh -c '%s' [vtysh] exited with %d: %s%s" % (command, rc, text or "no output", hint))
    try:
        return json.loads(out)
    except ValueError:
        raise InputError("vtysh -c '%s' [json] did not print JSON: %s" % (command, text or "no output")) from None


def run_gobgp(module, spec):
    params = module.params
    gobgpd = Gobgpd(module.run_command, gobgp=params["gobgp"], api_port=params["api_port"],
                    api_target=params["api_target"])
    try:
        status = gobgp_peer_status(peer_info_outputs(gobgpd, params["peer_group"], params["gobgp_config"]), spec)
    except GobgpError as exc:
        raise InputError("gobgp [gobgp] %s" % exc) from None
    return dict(changed=False, status=status, discovered_peers=status["discovered_peers"],
                accepted_total=status["accepted_total"], rejected_total=status["rejected_total"])


def run(module):
    spec = spec_of(module.params)
    if module.params["daemon"] == "gobgp":
        return run_gobgp(module, spec)
    argv = vtysh_argv(module)
    outputs = {"summary": show(module, argv, SUMMARY), "neighbors": show(module, argv, NEIGHBORS),
               "peer_group": show(module, argv, PEER_GROUP), "received": {}, "filtered": {}}
    for peer in dynamic_peer_status(outputs, spec)["discovered_peers"]:
        address = peer["address"]
        if not SAFE_NAME.match(address):  # a vtysh -c argument runs every line it holds
            module.warn("peer %r of the peer group is not queried for its routes: not an address" % address)
            continue
        outputs["received"][address] = show(module, argv, RECEIVED % address)
        outputs["filtered"][address] = show(module, argv, FILTERED % address)
    status = dynamic_peer_status(outputs, spec)
    return dict(changed=False, status=status, discovered_peers=status["discovered_peers"],
                accepted_total=status["accepted_total"], rejected_total=status["rejected_total"])


def main():
    module = AnsibleModule(
        argument_spec=dict(
            peer_group=dict(type="str", required=True),
            admitted=dict(type="list", elements="dict"),
            dynamic_peer=dict(type="dict"),
            vty_socket=dict(type="path"),
            vtysh=dict(type="path", default="vtysh"),
            daemon=dict(type="str", choices=["frr", "gobgp"], default="frr"),
            gobgp=dict(type="path", default="/usr/bin/gobgp"),
            api_target=dict(type="str"),
            api_port=dict(type="int", default=50051),
            gobgp_config=dict(type="path"),
        ),
        mutually_exclusive=[("admitted", "dynamic_peer")],
        supports_check_mode=True,
    )
    try:
        result = run(module)
    except InputError as exc:
        module.fail_json(msg=str(exc), changed=False)
    except Exception as exc:  # never a traceback
        module.fail_json(msg="internal error in sam_dynamic_peer_info (%s); please report it" % type(exc).__name__,
                         changed=False)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
