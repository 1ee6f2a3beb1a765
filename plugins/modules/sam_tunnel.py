#!/usr/bin/python
# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# ruff: noqa: E402

DOCUMENTATION = r"""
module: sam_tunnel
short_description: Manage the SAM ipip, gre and fou tunnel interfaces of a host through netlink
version_added: 0.1.0
description:
  - Creates, updates and deletes the tunnels of the C(TunnelInterface) resources returned by
    M(boma.mesh.sam_materialize), or of one tunnel given by its options.
  - Modes C(ipip), C(gre), and C(fou) (ipip inside UDP with encap ports). For C(fou) the local FOU receive
    port O(encap_dport) is opened too (generic netlink family C(fou); the kernel module C(fou) must be loaded).
  - Every managed link carries the interface alias (C(IFLA_IFALIAS)) C(boma.mesh); only such links are
    changed or removed. A link of the same name without the alias is an error.
  - The desired state is validated first (fou needs both encap ports, ipip and gre take none, names of at most
    15 characters, the underlay interface must exist, one tunnel per outer address pair); on any error the
    host is left unchanged.
  - The tunnel gets O(address) (its local C(/32)) and is set up. The route to the peer address is the job of
    M(boma.mesh.sam_route).
author: boma.mesh maintainers (@boma)
extends_documentation_fragment:
  - boma.mesh.attributes
  - boma.mesh.netlink
attributes:
  check_mode:
    support: full
    details: Computes the plan of actions and changes nothing.
  diff_mode:
    support: full
    details: Returns the managed tunnels (and FOU ports) before and after.
  idempotent:
    support: full
    details:
      - Each run reads the links, their addresses and the FOU ports from the kernel and plans only the differences, so a
        second run reports no change.
  platform:
    platforms: posix
options:
  resources:
    description:
      - The C(state.resources) list of M(boma.mesh.sam_materialize); only C(TunnelInterface) items are used.
      - Mutually exclusive with O(ifname).
    type: list
    elements: dict
  ifname:
    description: Name of one tunnel to manage instead of O(resources) (at most 15 characters).
    type: str
  mode:
    description: Tunnel mode of O(ifname).
    type: str
    choices: [ipip, gre, fou]
    default: ipip
  local:
    description: Local outer (underlay) IPv4 address of O(ifname).
    type: str
  remote:
    description: Remote outer (underlay) IPv4 address of O(ifname).
    type: str
  underlay_interface:
    description: Interface the outer packets of O(ifname) are bound to; it must exist.
    type: str
  address:
    description: Address of O(ifname) with prefix length, normally the local C(/32).
    type: str
  peer_address:
    description: Tunnel address of the peer (informational; M(boma.mesh.sam_route) installs its route).
    type: str
  encap_sport:
    description: UDP source port of a C(fou) tunnel (required for C(fou), not allowed otherwise).
    type: int
  encap_dport:
    description: UDP destination port of a C(fou) tunnel, also opened as the local FOU receive port.
    type: int
  key:
    description: GRE key of a C(gre) tunnel (input and output).
    type: int
  mtu:
    description:
      - MTU of the tunnel link (68-65535). Unset leaves the kernel's choice alone (C(mtu) in a resource spec).
    type: int
  state:
    description: C(present) creates or corrects the tunnels, C(absent) removes the managed ones listed.
    type: str
    choices: [present, absent]
    default: present
  purge:
    description: Also remove every managed tunnel (alias C(boma.mesh)) that is not in the desired list.
    type: bool
    default: false
seealso:
  - module: boma.mesh.sam_materialize
  - module: boma.mesh.sam_route
  - module: boma.mesh.sam_wireguard
"""

EXAMPLES = r"""
- name: Desired state of this host
  boma.mesh.sam_materialize:
    resources: "{{ sam_resources + sam_node_resources }}"
    node: "{{ sam_node }}"
  register: desired

- name: Tunnels to the RRs, removing managed tunnels of peers that left
  boma.mesh.sam_tunnel:
    resources: "{{ desired.state.resources }}"
    purge: true

- name: One fou tunnel in a lab namespace
  boma.mesh.sam_tunnel:
    ifname: sam-rr-a
    mode: fou
    local: 10.20.0.32
    remote: 10.10.0.2
    underlay_interface: eth1
    address: 10.255.0.32/32
    encap_sport: 5555
    encap_dport: 5555
    netns: leaf-b
"""

RETURN = r"""
actions:
  description: The plan, in order (carried out unless in check mode).
  returned: always
  type: list
  elements: dict
  contains:
    action:
      description: C(create), C(recreate), C(update) or C(delete).
      type: str
    kind:
      description: C(tunnel) or C(fou-port).
      type: str
    name:
      description: Interface name or port.
      type: str
    before:
      description: The object before (null when created).
      type: dict
    after:
      description: The object after (null when deleted).
      type: dict
tunnels:
  description: Names of the desired tunnels.
  returned: always
  type: list
  elements: str
  sample: [sam-rr-a, sam-rr-b]
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.boma.mesh.plugins.module_utils.sam.apply import netlink

NAME = "sam_tunnel"


def _single(params, errors):
    """The tunnel of the single-object options; its Findings name the option (netlink.OPTION_NAMES)."""
    spec = {"ifname": params["ifname"], "mode": params["mode"], "local": params["local"],
            "remote": params["remote"], "underlayInterface": params["underlay_interface"],
            "address": params["address"], "peerAddress": params["peer_address"],
            "encapSport": params["encap_sport"], "encapDport": params["encap_dport"], "key": params["key"],
            "mtu": params["mtu"]}
    return netlink.tunnel_from_spec(spec, netlink.OPTIONS, errors)


def main():
    module = AnsibleModule(
        argument_spec={
            "resources": {"type": "list", "elements": "dict"},
            "ifname": {"type": "str"},
            "mode": {"type": "str", "choices": ["ipip", "gre", "fou"], "default": "ipip"},
            "local": {"type": "str"},
            "remote": {"type": "str"},
            "underlay_interface": {"type": "str"},
            "address": {"type": "str"},
            "peer_address": {"type": "str"},
            "encap_sport": {"type": "int"},
            "encap_dport": {"type": "int"},
            "key": {"type": "int", "no_log": False},
            "mtu": {"type": "int"},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "purge": {"type": "bool", "default": False},
            "netns": {"type": "str"},
        },
        mutually_exclusive=[("resources", "ifname")],
        required_together=[("ifname", "local", "remote")],
        supports_check_mode=True,
    )
    if not netlink.HAS_PYROUTE2:
        module.fail_json(msg=missing_required_lib("pyroute2"), exception=str(netlink.PYROUTE2_IMPORT_ERROR))
    params = module.params
    if params["resources"] is None and params["ifname"] is None and not params["purge"]:
        module.fail_json(msg="one of resources, ifname is required (or purge=true to remove all managed tunnels)")
    errors, tunnels, where = [], [], []
    if params["ifname"] is not None:
        tun = _single(params, errors)
        if tun:
            tunnels.append(tun)
            where.append(netlink.OPTIONS)
    for resource, spec in netlink.resources_of_kind(params["resources"], "TunnelInterface"):
        tun = netlink.tunnel_from_spec(spec, resource, errors)
        if tun:
            tunnels.append(tun)
            where.append(resource)
    netlink.check_tunnel_set(tunnels, where, errors)
    if errors:
        netlink.fail_findings(module, NAME, "tunnels", errors)
    names = [t["ifname"] for t in tunnels]
    try:
        ipr = netlink.open_ipr(params["netns"])
    except netlink.NetlinkConfigError as exc:
        netlink.fail_findings(module, NAME, "tunnels", exc.findings)
    actions = []
    try:
        actions = netlink.plan_tunnels(ipr, tunnels, params["state"], params["purge"], params["netns"])
        if not module.check_mode:
            netlink.apply_actions(ipr, actions, params["netns"])
    except netlink.NetlinkConfigError as exc:
        netlink.fail_findings(module, NAME, "tunnels", exc.findings)
    except (netlink.Pyroute2Error, OSError) as exc:
        module.fail_json(msg="netlink refused a tunnel change: %s" % exc,
                         actions=netlink.public_actions(actions))
    finally:
        ipr.close()
    module.exit_json(**netlink.module_result(module, actions, tunnels=names))


if __name__ == "__main__":
    main()
