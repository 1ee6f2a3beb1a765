#!/usr/bin/python
# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# ruff: noqa: E402

DOCUMENTATION = r"""
module: sam_wireguard
short_description: Manage a SAM WireGuard interface, its private key file and its peers through netlink
version_added: 0.1.0
description:
  - Creates the WireGuard link O(interface) (marked with the interface alias C(boma.mesh)), sets its private
    key, listen port and address, and configures the peers of the C(WireGuardPeer) resources returned by
    M(boma.mesh.sam_materialize) (public key, endpoint, allowed IPs, persistent keepalive).
  - The private key lives only in O(private_key_path). It is generated on the host with C(cryptography)
    (X25519) when the file does not exist, written with mode C(0600), and never returned, logged or shown in a
    diff. The module returns the matching public key.
  - Peer public keys are validated (base64 of 32 bytes) before any change.
  - A link named O(interface) that is not a managed WireGuard link is an error.
author: boma.mesh maintainers (@boma)
extends_documentation_fragment:
  - boma.mesh.attributes
  - boma.mesh.netlink
attributes:
  check_mode:
    support: full
    details: Computes the plan of actions; no key file is written and nothing on the host changes.
  diff_mode:
    support: full
    details: Returns the interface settings and peers before and after, never key material other than public keys.
  idempotent:
    support: full
    details:
      - Each run reads the key file and the WireGuard interface from the kernel and plans only the differences; the key
        file is created once and then kept, so a second run reports no change.
  platform:
    platforms: posix
requirements:
  - cryptography
options:
  interface:
    description:
      - Name of the WireGuard interface.
      - Defaults to the C(interface) of the first C(WireGuardPeer) in O(resources).
    type: str
  private_key_path:
    description: File holding the base64 private key; created (mode C(0600)) when it does not exist.
    type: path
    required: true
  listen_port:
    description: UDP listen port of the interface (kept as it is when not given).
    type: int
  address:
    description: Address of the interface with prefix length (kept as it is when not given).
    type: str
  resources:
    description: The C(state.resources) list of M(boma.mesh.sam_materialize); only C(WireGuardPeer) items are used.
    type: list
    elements: dict
    default: []
  peers:
    description:
      - Further peers in the form of a C(WireGuardPeer) spec.
      - Keys C(publicKey), C(endpoint) (C(address:port)), C(allowedIPs) and C(persistentKeepalive).
    type: list
    elements: dict
    default: []
  state:
    description: C(present) configures the interface; C(absent) deletes the managed interface (the key file stays).
    type: str
    choices: [present, absent]
    default: present
  purge:
    description: Remove peers of the interface that are not listed.
    type: bool
    default: false
seealso:
  - module: boma.mesh.sam_materialize
  - module: boma.mesh.sam_tunnel
"""

EXAMPLES = r"""
- name: WireGuard underlay to the RRs
  boma.mesh.sam_wireguard:
    interface: wg-sam
    private_key_path: /etc/boma/wg-sam.key
    listen_port: 51820
    address: 172.16.0.32/24
    resources: "{{ desired.state.resources }}"
    purge: true
  register: wg

- name: Publish the public key for enrollment
  ansible.builtin.debug:
    var: wg.public_key
"""

RETURN = r"""
public_key:
  description: Base64 public key of the interface (null in check mode when the key file does not exist yet).
  returned: always
  type: str
interface:
  description: The interface name.
  returned: always
  type: str
actions:
  description: The plan, in order (carried out unless in check mode); no private key material.
  returned: always
  type: list
  elements: dict
  contains:
    action:
      description: C(create), C(update) or C(delete).
      type: str
    kind:
      description: C(private-key), C(wireguard), C(wireguard-device) or C(wireguard-peer).
      type: str
    name:
      description: Interface name, key file path or peer public key.
      type: str
    before:
      description: The object before (null when created).
      type: dict
    after:
      description: The object after (null when deleted).
      type: dict
"""

import os
import stat

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.boma.mesh.plugins.module_utils.sam.apply import netlink
from ansible_collections.boma.mesh.plugins.module_utils.sam.core.findings import Finding

NAME = "sam_wireguard"


def _desired_peers(params, errors):
    peers, where = [], []
    specs = netlink.resources_of_kind(params["resources"], "WireGuardPeer")
    specs += [("peers[%d]" % pos, spec) for pos, spec in enumerate(params["peers"])]
    for resource, spec in specs:
        peer = netlink.peer_from_spec(spec, resource, errors)
        if peer:
            peers.append(peer)
            where.append(resource)
    netlink.check_peer_set(peers, where, errors)
    return peers, specs


def _key_action(path, check_mode):
    """(private key or None, action or None): read the key file, create it or tighten its mode."""
    private = netlink.read_private_key(path)
    if private is None:
        if check_mode:
            return None, {"action": "create", "kind": "private-key", "name": path, "before": None,
                          "after": {"path": path, "mode": "0600"}}
        return netlink.create_private_key(path), {"action": "create", "kind": "private-key", "name": path,
                                                  "before": None, "after": {"path": path, "mode": "0600"}}
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode & 0o077:
        if not check_mode:
            os.chmod(path, 0o600)
        return private, {"action": "update", "kind": "private-key", "name": path,
                         "before": {"path": path, "mode": "%04o" % mode}, "after": {"path": path, "mode": "0600"}}
    return private, None


def _private_key(module):
    private, action = _key_action(module.params["private_key_path"], module.check_mode)
    if private:
        # Belt and braces: Ansible masks the value should any message ever quote it.
        module.no_log_values.add(private)
    return private, action


def main():
    module = AnsibleModule(
        argument_spec={
            "interface": {"type": "str"},
            "private_key_path": {"type": "path", "required": True, "no_log": False},
            "listen_port": {"type": "int"},
            "address": {"type": "str"},
            "resources": {"type": "list", "elements": "dict", "default": []},
            "peers": {"type": "list", "elements": "dict", "default": []},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "purge": {"type": "bool", "default": False},
            "netns": {"type": "str"},
        },
        supports_check_mode=True,
    )
    if not netlink.HAS_PYROUTE2:
        module.fail_json(msg=missing_required_lib("pyroute2"), exception=str(netlink.PYROUTE2_IMPORT_ERROR))
    if not netlink.HAS_CRYPTOGRAPHY:
        module.fail_json(msg=missing_required_lib("cryptography"), exception=str(netlink.CRYPTOGRAPHY_IMPORT_ERROR))
    params = module.params
    errors = []
    peers, specs = _desired_peers(params, errors)
    interface = params["interface"] or next((s.get("interface") for p, s in specs if s.get("interface")), None)
    if not isinstance(interface, str) or not netlink.valid_ifname(interface):
        errors.append(Finding(netlink.OPTIONS, "interface", "ifname", "%r must be 1-%d characters (or come from a "
                              "WireGuardPeer)" % (interface, netlink.IFNAME_MAX)))
    address = None
    if params["address"]:
        address = netlink.parse_interface(params["address"], netlink.OPTIONS, "address", errors)
    if params["listen_port"] is not None and not 0 < params["listen_port"] < 65536:
        errors.append(Finding(netlink.OPTIONS, "listenPort", "port",
                              "%r is not a UDP port (1-65535)" % params["listen_port"]))
    if errors:
        netlink.fail_findings(module, NAME, "WireGuard state", errors)
    actions, public = [], None
    try:
        ipr = netlink.open_ipr(params["netns"])
    except netlink.NetlinkConfigError as exc:
        netlink.fail_findings(module, NAME, "WireGuard state", exc.findings)
    try:
        private, key_action = None, None
        if params["state"] == "present":
            private, key_action = _private_key(module)
            public = netlink.public_key_of(private) if private else None
        desired = {"public_key": public, "listen_port": params["listen_port"], "address": address, "peers": peers}
        actions = netlink.plan_wireguard(ipr, params["netns"], interface, desired, params["state"], params["purge"])
        if not module.check_mode:
            netlink.apply_actions(ipr, actions, params["netns"], private_key=private, interface=interface)
        actions = ([key_action] if key_action else []) + actions
    except netlink.NetlinkConfigError as exc:
        netlink.fail_findings(module, NAME, "WireGuard state", exc.findings)
    except (netlink.Pyroute2Error, OSError, ValueError) as exc:
        module.fail_json(msg="netlink refused a WireGuard change on %s: %s" % (interface, exc),
                         actions=netlink.public_actions(actions))
    finally:
        ipr.close()
    module.exit_json(**netlink.module_result(module, actions, public_key=public, interface=interface))


if __name__ == "__main__":
    main()
