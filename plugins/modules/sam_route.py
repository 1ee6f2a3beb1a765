#!/usr/bin/python
# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# ruff: noqa: E402

DOCUMENTATION = r"""
module: sam_route
short_description: Manage the SAM IPv4 routes and owned loopback /32 addresses of a host through netlink
version_added: 0.1.0
description:
  - Installs the C(IPv4Route) resources returned by M(boma.mesh.sam_materialize) (destination, device,
    preferred source), or one route given by its options, in the main table.
  - Also puts the node's owned C(/32)s (for example the BGPRouter C(exportPrefixes)) on the loopback interface.
  - Managed routes carry the route protocol number 77 and managed loopback addresses the label
    C(<loopback>:sam); only those are removed, foreign routes and addresses are never touched.
  - Loopback addresses are added before the routes that use them as source and removed after them.
  - A device that does not exist is reported before any change.
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
    details: Returns the managed routes and loopback addresses before and after.
  idempotent:
    support: full
    details:
      - Each run reads the managed routes and loopback addresses from the kernel and plans only the differences, so a
        second run reports no change.
  platform:
    platforms: posix
options:
  resources:
    description:
      - The C(state.resources) list of M(boma.mesh.sam_materialize); only C(IPv4Route) items are used.
      - Mutually exclusive with O(destination).
    type: list
    elements: dict
  destination:
    description: Destination prefix of one route to manage instead of O(resources).
    type: str
  device:
    description: Output interface of O(destination).
    type: str
  source:
    description: Preferred source address of O(destination); it must be a local address.
    type: str
  loopback_addresses:
    description: The owned C(/32)s to put on O(loopback_interface).
    type: list
    elements: str
    default: []
  loopback_interface:
    description: Interface for O(loopback_addresses).
    type: str
    default: lo
  state:
    description: C(present) installs, C(absent) removes the managed routes and addresses listed.
    type: str
    choices: [present, absent]
    default: present
  purge:
    description: Also remove managed routes (protocol 77) and managed loopback addresses that are not listed.
    type: bool
    default: false
seealso:
  - module: boma.mesh.sam_materialize
  - module: boma.mesh.sam_tunnel
"""

EXAMPLES = r"""
- name: Routes to the RRs' tunnel addresses and the owned /32 on lo
  boma.mesh.sam_route:
    resources: "{{ desired.state.resources }}"
    loopback_addresses: >-
      {{ desired.state.resources | selectattr('kind', 'equalto', 'BGPRouter')
         | map(attribute='spec.exportPrefixes') | flatten }}
    purge: true

- name: One route
  boma.mesh.sam_route:
    destination: 10.99.0.2/32
    device: sam-rr-a
    source: 10.255.0.32
"""

RETURN = r"""
actions:
  description: The plan, in order (carried out unless in check mode).
  returned: always
  type: list
  elements: dict
  contains:
    action:
      description: C(create), C(update) or C(delete).
      type: str
    kind:
      description: C(route) or C(address).
      type: str
    name:
      description: Destination prefix, or C(<interface> <address>).
      type: str
    before:
      description: The object before (null when created).
      type: dict
    after:
      description: The object after (null when deleted).
      type: dict
routes:
  description: Destinations of the desired routes.
  returned: always
  type: list
  elements: str
  sample: [10.99.0.2/32]
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.boma.mesh.plugins.module_utils.sam.apply import netlink

NAME = "sam_route"


def main():
    module = AnsibleModule(
        argument_spec={
            "resources": {"type": "list", "elements": "dict"},
            "destination": {"type": "str"},
            "device": {"type": "str"},
            "source": {"type": "str"},
            "loopback_addresses": {"type": "list", "elements": "str", "default": []},
            "loopback_interface": {"type": "str", "default": "lo"},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "purge": {"type": "bool", "default": False},
            "netns": {"type": "str"},
        },
        mutually_exclusive=[("resources", "destination")],
        required_together=[("destination", "device")],
        supports_check_mode=True,
    )
    if not netlink.HAS_PYROUTE2:
        module.fail_json(msg=missing_required_lib("pyroute2"), exception=str(netlink.PYROUTE2_IMPORT_ERROR))
    params = module.params
    errors, routes, where = [], [], []
    if params["destination"] is not None:
        route = netlink.route_from_spec({"destination": params["destination"], "device": params["device"],
                                         "source": params["source"]}, netlink.OPTIONS, errors)
        routes += [route] if route else []
        where += [netlink.OPTIONS] if route else []
    for resource, spec in netlink.resources_of_kind(params["resources"], "IPv4Route"):
        route = netlink.route_from_spec(spec, resource, errors)
        routes += [route] if route else []
        where += [resource] if route else []
    loopbacks = netlink.loopback_from_list(params["loopback_addresses"], netlink.OPTIONS, "loopbackAddresses", errors)
    netlink.check_route_set(routes, where, errors)
    dests = [r["destination"] for r in routes]
    if errors:
        netlink.fail_findings(module, NAME, "routes", errors)
    try:
        ipr = netlink.open_ipr(params["netns"])
    except netlink.NetlinkConfigError as exc:
        netlink.fail_findings(module, NAME, "routes", exc.findings)
    actions = []
    try:
        actions = netlink.plan_routes(ipr, routes, loopbacks, params["state"], params["purge"],
                                      params["loopback_interface"])
        if not module.check_mode:
            netlink.apply_actions(ipr, actions, params["netns"])
    except netlink.NetlinkConfigError as exc:
        netlink.fail_findings(module, NAME, "routes", exc.findings)
    except (netlink.Pyroute2Error, OSError) as exc:
        module.fail_json(msg="netlink refused a route change: %s" % exc, actions=netlink.public_actions(actions))
    finally:
        ipr.close()
    module.exit_json(**netlink.module_result(module, actions, routes=dests))


if __name__ == "__main__":
    main()
