#!/usr/bin/python
# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# ruff: noqa: E402

DOCUMENTATION = r"""
module: sam_bgp
short_description: Render a node's SAM BGP state for FRR and apply it with frr-reload (never a bgpd restart)
version_added: 0.1.0
description:
  - Renders the BGP part of a node's desired state from M(boma.mesh.sam_materialize) as FRR configuration
    (RR - one dynamic peer-group per admitted leaf with the leaf's tunnel C(/32) as its only listen range and
    the leaf's own prefix-list inbound, route-reflector clients, RR peers when the state has them; leaf - one
    neighbor per RR exporting only its owned C(/32)s; the documents' timer preset as C(timers K H)), or takes
    a ready O(config).
  - Validates the candidate (C(vtysh -C) grammar plus a semantic lint for undefined route-maps and
    prefix-lists and listen ranges before their peer-group), asks C(frr-reload.py --test) for the delta and
    reloads only when there is one. Sessions stay up across the reload.
  - An invalid candidate is never applied and the running configuration stays as it was.
  - Host-owned lines of the running configuration (hostname, forwarding, logging, service) are carried over
    unchanged.
author: boma.mesh maintainers (@boma)
extends_documentation_fragment:
  - boma.mesh.attributes
attributes:
  check_mode:
    support: full
    details: Computes the delta with C(frr-reload.py --test) and changes nothing.
  diff_mode:
    support: full
    details: Returns the running configuration before and after.
  idempotent:
    support: full
    details:
      - Each run reads FRR's running configuration and asks C(frr-reload.py --test) for the delta. Once a run has
        applied the candidate (and persisted it, O(persist)), the delta is empty and the next run reports no change.
      - A change made to FRR by other means in between is corrected, and reported as a change.
  platform:
    platforms: posix
options:
  desired:
    description:
      - The node's desired state as returned by M(boma.mesh.sam_materialize) (C(node), C(role), C(resources)),
        that is its RV(boma.mesh.sam_materialize#module:state).
      - Exactly one of O(desired) and O(config) is required.
      - This option was called C(state), which in every other module means present or absent. The old name
        still works as an alias but is deprecated (Ansible warns) and will be removed in boma.mesh 2.0.0.
    type: dict
    aliases: [state]
  config:
    description:
      - A complete FRR configuration to apply instead of rendering O(desired).
    type: str
  bfd:
    description:
      - Enable BFD for fast failover (needs C(bfdd) running) on every neighbor and peer-group - a leaf's RR neighbors,
        the RR's leaf peer-group and its RR peers.
      - On an RR, give the enrollment service the same setting (C(samctl serve --bgp-bfd)), or its reconcile
        removes it again.
    type: bool
    default: false
  leaf_routes:
    description:
      - What an RR sends each leaf. V(all) - every admitted /32 (each with the RR as next hop).
        V(aggregate) - one C(aggregate-address) per pool of the BGPDynamicPeer's C(allowedPrefixes), through an
        outbound C(prefix-list SAM-TO-LEAVES); the RRs still exchange every /32.
      - A leaf forwards the same way with either (every reflected /32 has the RR as next hop). V(aggregate) keeps
        bgpd's memory per session flat up to 1,000 leaves, where with V(all) it grows with the number of leaves
        (FRR gives each leaf's peer-group its own update-group, and with V(all) each holds every /32; see
        docs/scale.md).
      - On an RR, give the enrollment service the same setting (C(samctl serve --bgp-leaf-routes)), or its
        reconcile puts the other one back.
    type: str
    choices: [all, aggregate]
    default: all
  connect_timer:
    description: Leaf connect-retry timer toward the RRs in seconds (RRs never dial dynamic peers).
    type: int
    default: 2
  route_map_delay:
    description: C(bgp route-map delay-timer) in seconds, so a new leaf is admitted quickly after a reload.
    type: int
    default: 1
  listen_limit:
    description: C(bgp listen limit) when the BGPDynamicPeer does not set one.
    type: int
    default: 1000
  announce:
    description:
      - Extra prefixes a leaf originates, beyond its owned C(/32)s.
      - For tests and labs only, which use it to prove that the RRs reject hostile routes (another leaf's C(/32),
        a default route, a prefix outside the pool). Must not be used in production.
    type: list
    elements: str
    default: []
  export_any:
    description:
      - Let a leaf export everything it originates instead of only its owned C(/32)s (the RRs' admission must
        still reject the rest).
      - For tests and labs only, together with O(announce). Must not be used in production.
    type: bool
    default: false
  vtysh:
    description: vtysh binary.
    type: path
    default: /usr/bin/vtysh
  vty_socket:
    description: Directory of the daemons' vty sockets when they do not use the default C(/var/run/frr).
    type: path
  confdir:
    description: FRR configuration directory (C(frr.conf) is written there when O(persist=true)).
    type: path
    default: /etc/frr
  rundir:
    description: Directory for frr-reload's temporary files (defaults to O(vty_socket) or C(/var/run/frr)).
    type: path
  reload_script:
    description: Path of C(frr-reload.py) (Debian package C(frr-pythontools)).
    type: path
    default: /usr/lib/frr/frr-reload.py
  persist:
    description: Also write the applied configuration to O(confdir)/frr.conf so it survives a restart.
    type: bool
    default: true
seealso:
  - module: boma.mesh.sam_materialize
  - module: boma.mesh.sam_dynamic_peer_info
"""

EXAMPLES = r"""
- name: Desired state of this RR
  boma.mesh.sam_materialize:
    resources: "{{ sam_resources + sam_node_resources + sam_admitted_claims }}"
    node: "{{ sam_node }}"
  register: desired

- name: Apply its BGP part to FRR
  boma.mesh.sam_bgp:
    desired: "{{ desired.state }}"
    bfd: true

- name: Same, sending each leaf only the pools' aggregates (one route per leaf session)
  boma.mesh.sam_bgp:
    desired: "{{ desired.state }}"
    leaf_routes: aggregate
"""

RETURN = r"""
config:
  description: The rendered (or given) candidate, without the carried-over host lines.
  returned: always
  type: str
commands:
  description: The delta frr-reload applied (or would apply in check mode).
  returned: always
  type: dict
  contains:
    delete:
      description: Lines removed.
      type: list
      elements: str
    add:
      description: Lines added.
      type: list
      elements: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.boma.mesh.plugins.module_utils.sam.apply.frr import Frr, FrrError, apply
from ansible_collections.boma.mesh.plugins.module_utils.sam.core.render.frr import LEAF_ROUTES, RenderError, render_frr


def main():
    module = AnsibleModule(
        argument_spec={
            # "state" was the name until 0.2.0; Ansible warns when the alias is used.
            "desired": {"type": "dict", "aliases": ["state"],
                        "deprecated_aliases": [{"name": "state", "version": "2.0.0", "collection_name": "boma.mesh"}]},
            "config": {"type": "str"},
            "bfd": {"type": "bool", "default": False},
            "leaf_routes": {"type": "str", "choices": list(LEAF_ROUTES), "default": "all"},
            "connect_timer": {"type": "int", "default": 2},
            "route_map_delay": {"type": "int", "default": 1},
            "listen_limit": {"type": "int", "default": 1000},
            "announce": {"type": "list", "elements": "str", "default": []},
            "export_any": {"type": "bool", "default": False},
            "vtysh": {"type": "path", "default": "/usr/bin/vtysh"},
            "vty_socket": {"type": "path"},
            "confdir": {"type": "path", "default": "/etc/frr"},
            "rundir": {"type": "path"},
            "reload_script": {"type": "path", "default": "/usr/lib/frr/frr-reload.py"},
            "persist": {"type": "bool", "default": True},
        },
        mutually_exclusive=[("desired", "config")],
        required_one_of=[("desired", "config")],
        supports_check_mode=True,
    )
    params = module.params
    if params["config"] is not None:
        candidate = params["config"]
    else:
        options = {key: params[key] for key in ("bfd", "connect_timer", "route_map_delay", "listen_limit",
                                                "export_any", "leaf_routes")}
        options["announce"] = tuple(params["announce"])
        try:
            candidate = render_frr(params["desired"], options)
        except (RenderError, KeyError, TypeError, ValueError) as exc:
            module.fail_json(msg="desired cannot be rendered: %s" % exc)
    frr = Frr(module.run_command, vtysh=params["vtysh"], reload_script=params["reload_script"],
              vty_socket=params["vty_socket"], confdir=params["confdir"], rundir=params["rundir"])
    persist = params["confdir"] + "/frr.conf" if params["persist"] else None
    try:
        result = apply(frr, candidate, check_mode=module.check_mode, persist_path=persist)
    except (FrrError, OSError) as exc:
        module.fail_json(msg=str(exc), config=candidate)
    out = {"changed": result["changed"], "config": candidate,
           "commands": {"delete": result["deletes"], "add": result["adds"]}}
    if module._diff:  # pylint: disable=protected-access
        out["diff"] = {"before": result["before"], "before_header": "running-config",
                       "after": result["candidate"] if module.check_mode else result["after"],
                       "after_header": "candidate" if module.check_mode else "running-config after reload"}
    module.exit_json(**out)


if __name__ == "__main__":
    main()
