#!/usr/bin/python
# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# ruff: noqa: E402

DOCUMENTATION = r"""
module: sam_gobgp
short_description: Render a node's SAM BGP state for gobgpd and apply it with a reload (never a restart)
version_added: 0.2.0
description:
  - The gobgpd sibling of M(boma.mesh.sam_bgp). Renders the BGP part of a node's desired state from
    M(boma.mesh.sam_materialize) as gobgpd TOML (RR - a global import policy admitting each leaf's own C(/32)s
    from its tunnel address only, default reject; leaf - one neighbor per RR, a global export policy for the owned
    C(/32)s only, default reject), or takes a ready O(config).
  - Validates the candidate before anything is written - a semantic lint for what gobgpd accepts and then runs
    open (an undefined or empty set, an unknown next-hop keyword, a default accept; gobgpd drops a whole policy it
    cannot install and then imports everything) and C(gobgpd -d) - then replaces the configuration file
    atomically and signals gobgpd (SIGHUP) to reload it. Sessions whose settings did not change stay up.
  - Verifies from gobgpd's JSON that it runs the candidate (global policy and default action, every prefix and
    neighbor set, the configured neighbors), runs the resets a policy change needs (an RR re-runs its import
    policy, a leaf that lost an owned C(/32) resets its sessions) and on a leaf originates its owned C(/32)s.
  - An invalid candidate is never applied and the configuration file stays as it was.
author: boma.mesh maintainers (@boma)
extends_documentation_fragment:
  - boma.mesh.attributes
attributes:
  check_mode:
    support: full
    details: Lints and checks the candidate, compares it with the file and with what gobgpd holds, changes nothing.
  diff_mode:
    support: full
    details: Returns the configuration file before and after.
  idempotent:
    support: full
    details:
      - A run whose candidate equals the file and whose daemon holds it changes nothing and reports no change.
      - A daemon that does not hold its file (reloaded by hand, restarted with another file) is reloaded and
        reported as a change.
  platform:
    platforms: posix
options:
  desired:
    description:
      - The node's desired state as returned by M(boma.mesh.sam_materialize) (C(node), C(role), C(resources)).
      - Exactly one of O(desired) and O(config) is required.
    type: dict
  config:
    description: A complete gobgpd TOML configuration to apply instead of rendering O(desired); needs O(role).
    type: str
  role:
    description:
      - The node's role, which decides what the lint and the verification expect (RR - import policy; leaf - export
        policy and originated C(/32)s). Taken from O(desired) when it is given.
    type: str
    choices: [rr, leaf]
  connect_retry:
    description: Leaf connect-retry timer toward the RRs in seconds.
    type: int
    default: 2
  listen_port:
    description: gobgpd's BGP port (C(global.config.port)).
    type: int
    default: 179
  export_any:
    description:
      - Let a leaf export everything it originates instead of only its owned C(/32)s.
      - For tests and labs only, which use it to prove that the RRs reject hostile routes. Must not be used in
        production.
    type: bool
    default: false
  config_path:
    description: gobgpd's configuration file (Debian's C(gobgpd.service) reads C(/etc/gobgpd.conf)).
    type: path
    default: /etc/gobgpd.conf
  gobgpd:
    description: gobgpd binary (for its C(-d) check).
    type: path
    default: /usr/bin/gobgpd
  gobgp:
    description: gobgp CLI binary (for the read-back, the resets and the originated prefixes).
    type: path
    default: /usr/bin/gobgp
  api_host:
    description: Address of gobgpd's gRPC API.
    type: str
    default: 127.0.0.1
  api_port:
    description: Port of gobgpd's gRPC API.
    type: int
    default: 50051
  api_target:
    description:
      - gobgp's C(--target) instead of O(api_host) and O(api_port), for a gobgpd whose API listens on a unix
        socket (C(--api-hosts unix:///run/gobgpd.sock)), for example C(unix:///run/gobgpd.sock).
    type: str
  service:
    description:
      - systemd unit whose main process is signalled to reload (Debian's C(ExecReload) starts a second gobgpd
        instead, so the module signals the process itself).
    type: str
    default: gobgpd
  pid:
    description: PID of a gobgpd that systemd does not run (a lab, a test); overrides O(service).
    type: int
  pid_file:
    description:
      - File holding the PID of a gobgpd that systemd does not run (its first word), read at each reload, so a
        supervisor that restarts gobgpd keeps working; overrides O(service). Mutually exclusive with O(pid).
    type: path
    version_added: 0.2.0
  reload_timeout:
    description: Seconds to wait for gobgpd to hold the candidate after the reload.
    type: float
    default: 10
seealso:
  - module: boma.mesh.sam_bgp
  - module: boma.mesh.sam_materialize
"""

EXAMPLES = r"""
- name: Desired state of this RR
  boma.mesh.sam_materialize:
    resources: "{{ sam_resources + sam_node_resources + sam_admitted_claims }}"
    node: "{{ sam_node }}"
  register: desired

- name: Apply its BGP part to gobgpd
  boma.mesh.sam_gobgp:
    desired: "{{ desired.state }}"

- name: A gobgpd that systemd does not run
  boma.mesh.sam_gobgp:
    desired: "{{ desired.state }}"
    config_path: /srv/lab/rr-a/gobgpd.toml
    pid: "{{ lab_gobgpd_pid }}"
    api_port: 50052
"""

RETURN = r"""
config:
  description: The rendered (or given) candidate.
  returned: always
  type: str
commands:
  description: The gobgp calls that followed the reload (resets) and a leaf's originated or withdrawn C(/32)s.
  returned: always
  type: list
  elements: str
  sample: ["neighbor all softresetin"]
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.boma.mesh.plugins.module_utils.sam.apply.gobgp import Gobgpd, GobgpError, apply
from ansible_collections.boma.mesh.plugins.module_utils.sam.core.render.gobgp import RenderError, render_gobgp


def main():
    module = AnsibleModule(
        argument_spec={
            "desired": {"type": "dict"},
            "config": {"type": "str"},
            "role": {"type": "str", "choices": ["rr", "leaf"]},
            "connect_retry": {"type": "int", "default": 2},
            "listen_port": {"type": "int", "default": 179},
            "export_any": {"type": "bool", "default": False},
            "config_path": {"type": "path", "default": "/etc/gobgpd.conf"},
            "gobgpd": {"type": "path", "default": "/usr/bin/gobgpd"},
            "gobgp": {"type": "path", "default": "/usr/bin/gobgp"},
            "api_host": {"type": "str", "default": "127.0.0.1"},
            "api_port": {"type": "int", "default": 50051},
            "api_target": {"type": "str"},
            "service": {"type": "str", "default": "gobgpd"},
            "pid": {"type": "int"},
            "pid_file": {"type": "path"},
            "reload_timeout": {"type": "float", "default": 10},
        },
        mutually_exclusive=[("desired", "config"), ("pid", "pid_file")],
        required_one_of=[("desired", "config")],
        required_by={"config": ["role"]},
        supports_check_mode=True,
    )
    params = module.params
    role = params["role"]
    if params["config"] is not None:
        candidate = params["config"]
    else:
        role = role or params["desired"].get("role")
        options = {key: params[key] for key in ("connect_retry", "listen_port", "export_any")}
        try:
            candidate = render_gobgp(params["desired"], options)
        except (RenderError, KeyError, TypeError, ValueError) as exc:
            module.fail_json(msg="desired cannot be rendered: %s" % exc)
    if role not in ("rr", "leaf"):
        module.fail_json(msg="role: %r is not rr or leaf (desired.role or the role option)" % (role,))
    gobgpd = Gobgpd(module.run_command, config_path=params["config_path"], gobgpd=params["gobgpd"],
                    gobgp=params["gobgp"], api_host=params["api_host"], api_port=params["api_port"],
                    api_target=params["api_target"], pid=params["pid"], service=params["service"],
                    pid_file=params["pid_file"])
    try:
        result = apply(gobgpd, candidate, role, check_mode=module.check_mode, export_any=params["export_any"],
                       timeout=params["reload_timeout"])
    except (GobgpError, OSError) as exc:
        module.fail_json(msg=str(exc), config=candidate)
    out = {"changed": result["changed"], "config": candidate, "commands": result["commands"]}
    if module._diff:  # pylint: disable=protected-access
        out["diff"] = {"before": result["before"] or "", "before_header": params["config_path"],
                       "after": result["after"], "after_header": "candidate"}
    module.exit_json(**out)


if __name__ == "__main__":
    main()
