#!/usr/bin/python
# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Ansible modules keep DOCUMENTATION, EXAMPLES and RETURN above the imports:
# ruff: noqa: E402

from __future__ import annotations

DOCUMENTATION = r"""
module: netbird_info
short_description: Report the NetBird agent's mesh state (management, signal, mesh IP, peers)
version_added: 0.2.0
description:
  - Runs C(netbird status --json) (an argument list, never a shell) and reports what the agent says about this
    host, namely the daemon status, whether the management and signal services are connected, the mesh IP
    (C(netbirdIp)) and FQDN, the WireGuard interface kind and port, the agent version and every peer with its
    connection state.
  - Says whether the host is on the mesh (RV(ready)) and, when it is not, what is missing (RV(problems)), for
    example C(management not connected), C(no mesh IP) or C(peers not connected) followed by the peers.
    O(required_peers) names the peers that must be connected too.
  - The fields are those of NetBird's own C(status --json) output (netbirdio/netbird,
    C(client/status/status.go)), picked one by one; no other field of the agent's output is returned.
  - An agent that is not logged in (C(NeedsLogin), C(LoginFailed), C(SessionExpired)) prints text instead of
    JSON; that is reported as a host that is not on the mesh, not as an error.
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
      - The state is read from the running agent on every run; it changes while the agent connects, so two runs
        may differ (retry with C(until) to wait for a connection).
requirements:
  - The NetBird agent (C(netbird)) installed and its daemon running on the managed host.
options:
  required_peers:
    description:
      - Peers that must be connected for RV(ready) to be true, each named by its FQDN (C(askari.netbird.selfhosted)),
        the first label of its FQDN (C(askari)) or its mesh address (C(100.64.0.1)); case and a trailing dot do
        not matter.
      - A name no peer has is reported as C(not a peer).
    type: list
    elements: str
    default: []
  executable:
    description:
      - The C(netbird) command, a name looked up on E(PATH) or an absolute path.
    type: str
    default: netbird
notes:
  - The module fails, with a message and no traceback, when C(netbird) is not installed, when its daemon is not
    running (C(netbird status) cannot reach it) and when the command prints neither JSON nor the login text.
  - C(netbird status --json) holds no setup key. Error texts of the agent are cut to 200 characters.
  - The status has no interface name (the agent's is C(wt0) unless configured otherwise); RV(interface) tells
    whether it is a kernel WireGuard interface and its port.
seealso:
  - module: boma.mesh.netbird_enroll
  - name: NetBird CLI
    description: The C(netbird status) command.
    link: https://docs.netbird.io/how-to/cli
"""

EXAMPLES = r"""
- name: Read the agent's state
  boma.mesh.netbird_info:
  register: mesh

- name: Show this host's mesh address
  ansible.builtin.debug:
    msg: "{{ mesh.fqdn }} is {{ mesh.address }} on the mesh"

- name: Wait until this host and two peers are connected
  boma.mesh.netbird_info:
    required_peers: [askari, ubongo.netbird.selfhosted]
  register: mesh
  until: mesh.ready
  retries: 12
  delay: 5

- name: Fail naming what is missing
  ansible.builtin.assert:
    that: mesh.ready
    fail_msg: "{{ mesh.problems | join('; ') }}"
"""

RETURN = r"""
ready:
  description: Whether management and signal are connected, the host has a mesh IP and every O(required_peers) peer
    is connected (and, when the agent reports one, the daemon status is C(Connected)).
  returned: success
  type: bool
  sample: true
problems:
  description: What keeps RV(ready) false, one short phrase each; empty when ready.
  returned: success
  type: list
  elements: str
  sample: ["signal not connected", "peers not connected: askari (Idle), ubongo (not a peer)"]
missing_peers:
  description: The O(required_peers) names that are not connected, in the order given.
  returned: success
  type: list
  elements: str
  sample: [askari]
format:
  description: C(json), or C(text) when the agent printed its login text (not logged in).
  returned: success
  type: str
  sample: json
daemon_status:
  description: C(daemonStatus) (C(Connected), C(Connecting), C(Idle), C(NeedsLogin), ...); null for agents that do
    not report it.
  returned: success
  type: str
  sample: Connected
version:
  description: The daemon's version (C(daemonVersion)).
  returned: success
  type: str
  sample: 0.59.0
cli_version:
  description: The CLI's version (C(cliVersion)).
  returned: success
  type: str
  sample: 0.59.0
management:
  description: The management service as the agent sees it.
  returned: success
  type: dict
  contains:
    url:
      description: Its URL, as the agent reports it (with the port).
      type: str
    connected:
      description: Whether the agent is connected to it.
      type: bool
    error:
      description: The agent's last error for it, null when none.
      type: str
  sample: {"url": "https://netbird.example.org:443", "connected": true, "error": null}
signal:
  description: The signal service, with the same keys as RV(management).
  returned: success
  type: dict
  sample: {"url": "https://netbird.example.org:443", "connected": true, "error": null}
ip:
  description: The host's mesh address with its prefix length (C(netbirdIp)); null when it has none.
  returned: success
  type: str
  sample: 100.64.0.7/16
address:
  description: RV(ip) without the prefix length; null when there is no valid mesh address.
  returned: success
  type: str
  sample: 100.64.0.7
fqdn:
  description: The host's name on the mesh (C(fqdn)).
  returned: success
  type: str
  sample: boma-netbird.netbird.selfhosted
public_key:
  description: The host's WireGuard public key (C(publicKey)); public, not a secret.
  returned: success
  type: str
interface:
  description: The WireGuard interface.
  returned: success
  type: dict
  contains:
    kernel:
      description: Whether it is a kernel WireGuard interface (C(usesKernelInterface)); false for userspace.
      type: bool
    wireguard_port:
      description: Its UDP port (C(wireguardPort)); null for agents that do not report it.
      type: int
  sample: {"kernel": true, "wireguard_port": 51820}
peers:
  description: The peers the agent knows, sorted by mesh address as the agent sorts them.
  returned: success
  type: list
  elements: dict
  contains:
    fqdn:
      description: The peer's mesh FQDN.
      type: str
    ip:
      description: The peer's mesh address (C(netbirdIp)).
      type: str
    status:
      description: C(Connected), C(Connecting) or C(Idle).
      type: str
    connected:
      description: Whether RV(peers[].status) is C(Connected).
      type: bool
    connection_type:
      description: C(P2P) or C(Relayed) when connected, C(-) otherwise.
      type: str
    last_handshake:
      description: Time of the last WireGuard handshake (C(lastWireguardHandshake)), as the agent prints it.
      type: str
  sample: [{"fqdn": "askari.netbird.selfhosted", "ip": "100.64.0.1", "status": "Connected", "connected": true,
            "connection_type": "P2P", "last_handshake": "2026-06-28T01:00:00Z"}]
peers_total:
  description: How many peers the agent knows.
  returned: success
  type: int
  sample: 3
peers_connected:
  description: How many of them are connected.
  returned: success
  type: int
  sample: 2
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.boma.mesh.plugins.module_utils.netbird.status import (
    StatusError,
    missing_peers,
    parse,
    problems,
)

# client/cmd/status.go getStatus(): the CLI's words when the daemon's socket does not answer.
DAEMON_DOWN = "failed to connect to daemon"
DETAIL_MAX = 300


class InfoError(Exception):
    """A failure reported with fail_json: the message says what to do, there is no traceback."""


def _detail(text):
    return " ".join((text or "").split())[:DETAIL_MAX]


def read(module):
    params = module.params
    exe = module.get_bin_path(params["executable"], required=False)
    if exe is None:
        raise InfoError("NetBird is not installed: `%s` is not on PATH (the role boma.mesh.netbird_agent installs "
                        "it)" % params["executable"])
    argv = [exe, "status", "--json"]
    rc, out, err = module.run_command(argv)
    if rc != 0:
        detail = _detail(err or out)
        if DAEMON_DOWN in (err or out):
            raise InfoError("the NetBird daemon is not running (`netbird status --json` rc=%s: %s); start it with "
                            "`systemctl start netbird`" % (rc, detail))
        raise InfoError("`netbird status --json` failed (rc=%s): %s" % (rc, detail or "no output"))
    try:
        return parse(out)
    except StatusError as exc:
        raise InfoError("`netbird status --json` %s" % exc) from None


def main():
    module = AnsibleModule(
        argument_spec=dict(
            required_peers=dict(type="list", elements="str", default=[]),
            executable=dict(type="str", default="netbird"),
        ),
        supports_check_mode=True,
    )
    try:
        summary = read(module)
    except InfoError as exc:
        module.fail_json(msg=str(exc), changed=False)
    except Exception as exc:  # an unexpected failure still ends in a message, never a traceback
        module.fail_json(msg="internal error in netbird_info (%s); please report it" % type(exc).__name__,
                         changed=False)
    required = module.params["required_peers"]
    found = problems(summary, required)
    module.exit_json(changed=False, ready=not found, problems=found,
                     missing_peers=[name for name, _why in missing_peers(summary, required)], **summary)


if __name__ == "__main__":
    main()
