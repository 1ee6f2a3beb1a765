#!/usr/bin/python
# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Ansible modules keep DOCUMENTATION, EXAMPLES and RETURN above the imports:
# ruff: noqa: E402

from __future__ import annotations

DOCUMENTATION = r"""
module: netbird_enroll
short_description: Enrol the NetBird agent with a management server, idempotently
version_added: 0.1.0
description:
  - Reads C(netbird status --json) (C(daemonStatus), C(management.url), C(management.connected)) and runs
    C(netbird up --management-url URL) only when the agent is not connected, or is connected to another
    management URL. In that case it runs C(netbird down) first, because C(up) on a connected agent ignores new flags.
  - The setup key never appears in a command line; it is handed over in the environment variable C(NB_SETUP_KEY)
    or in a 0600 temporary file passed with C(--setup-key-file) (O(setup_key_via)), removed afterwards.
  - Agents older than the JSON status print plain text in the C(NeedsLogin) state; that text is understood too.
  - With O(plan=true) nothing is run except, when the agent is installed, C(netbird status --json); the result
    lists the commands that would run (RV(commands)), which is how the role is tested without a coordinator.
author:
  - boma.mesh maintainers (@boma)
extends_documentation_fragment:
  - boma.mesh.attributes
  - boma.mesh.netbird
attributes:
  idempotent:
    support: partial
    details:
      - A second run changes nothing once C(netbird status) reports the agent connected to O(management_url).
      - That connection state comes from the NetBird management service, a remote service. While the agent cannot
        reach it, or is still connecting, the next run runs C(netbird up) again.
      - With O(plan=true) nothing is ever changed.
options:
  management_url:
    description:
      - URL of the NetBird management service, as C(https://netbird.example.org).
      - Compared with the agent's C(management.url) ignoring case of scheme and host, a trailing slash and the
        default port (NetBird reports C(https://host:443)).
    type: str
    required: true
  setup_key:
    description:
      - The (reusable, scoped, expiring) setup key. Required when the module has to run C(netbird up).
      - Never put on a command line, never returned, never part of an error message.
    type: str
  setup_key_via:
    description:
      - How the key reaches C(netbird up). C(env) sets C(NB_SETUP_KEY) for that one process; C(file) writes a 0600
        temporary file, passes C(--setup-key-file) and removes the file.
    type: str
    choices: [env, file]
    default: env
  executable:
    description:
      - The C(netbird) command, a name looked up on C(PATH) or an absolute path.
    type: str
    default: netbird
  plan:
    description:
      - Only compute the decision and the commands (RV(commands)); run neither C(up) nor C(down).
      - Used when the role must not enrol (C(netbird_agent__manage=false)).
    type: bool
    default: false
  status_output:
    description:
      - Decide against this text (the output of C(netbird status --json), or older plain text) instead of running
        C(netbird status). Only with O(plan=true); lets tests prove the idempotency guard without an agent.
      - For tests and labs only. Must not be used in production.
    type: str
seealso:
  - name: NetBird CLI
    description: The C(netbird up) and C(netbird status) commands.
    link: https://docs.netbird.io/how-to/cli
"""

EXAMPLES = r"""
- name: Enrol this host (the key travels in NB_SETUP_KEY)
  boma.mesh.netbird_enroll:
    management_url: https://netbird.example.org
    setup_key: "{{ vault.netbird.setup_key }}"

- name: Show what would run, without running it
  boma.mesh.netbird_enroll:
    management_url: https://netbird.example.org
    setup_key: "{{ vault.netbird.setup_key }}"
    plan: true
  register: enrol_plan
"""

RETURN = r"""
actions:
  description: The steps taken (or, in check mode and with O(plan=true), that would be taken), in order.
  returned: always
  type: list
  elements: str
  sample: [down, up]
commands:
  description: The command lines of RV(actions); they never contain the setup key.
  returned: always
  type: list
  elements: list
  sample: [["netbird", "down"], ["netbird", "up", "--management-url", "https://netbird.example.org"]]
reason:
  description: Why the actions were chosen (C(connected), C(not-connected), C(management-url-drift)).
  returned: always
  type: str
  sample: not-connected
enrolled:
  description: Whether C(netbird up) ran successfully in this run.
  returned: always
  type: bool
  sample: true
key_transport:
  description: How the key is (or would be) handed to C(netbird up), C(env:NB_SETUP_KEY) or C(file:--setup-key-file).
  returned: always
  type: str
  sample: env:NB_SETUP_KEY
status:
  description: The agent's state before the run, as read from C(netbird status).
  returned: always
  type: dict
  contains:
    daemon_status:
      description: C(daemonStatus), as C(Connected), C(NeedsLogin), C(Idle); null when the agent is not installed.
      type: str
    management_url:
      description: The management URL the agent uses, null when unknown.
      type: str
    management_connected:
      description: Whether the agent is connected to its management service.
      type: bool
    format:
      description: C(json), C(text) (older agents, NeedsLogin), or C(absent) (no agent, only with O(plan=true)).
      type: str
  sample: {"daemon_status": "Connected", "management_url": "https://netbird.example.org:443",
           "management_connected": true, "format": "json"}
"""

import json
import os
import re
import tempfile
from urllib.parse import urlsplit

from ansible.module_utils.basic import AnsibleModule

KEY_ENV = "NB_SETUP_KEY"
DEFAULT_PORTS = {"https": 443, "http": 80}
# `netbird status` (text) of older agents, and of every agent that needs a login: "Daemon status: NeedsLogin".
TEXT_DAEMON = re.compile(r"^\s*Daemon status:\s*(\S+)", re.MULTILINE)
TEXT_MGMT = re.compile(r"^\s*Management:\s*(Connected|Disconnected)(?:\s+to\s+(\S+))?", re.MULTILINE | re.IGNORECASE)
NOT_LOGGED_IN = ("NeedsLogin", "LoginFailed", "SessionExpired")


class EnrollError(Exception):
    """A failure whose message never holds the setup key."""


def normalize_url(url):
    """Comparable form of a management URL: lower-case scheme and host, explicit port, no trailing slash."""
    if not url:
        return None
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    try:
        port = parts.port or DEFAULT_PORTS.get(scheme)
    except ValueError:
        port = None
    return "%s://%s:%s%s" % (scheme, host, port, parts.path.rstrip("/"))


def parse_status(text):
    """The state in `netbird status --json` output, or in the plain text older agents print."""
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        mgmt = doc.get("management") or {}
        return dict(daemon_status=doc.get("daemonStatus"), management_url=mgmt.get("url") or None,
                    management_connected=bool(mgmt.get("connected")), format="json")
    daemon = TEXT_DAEMON.search(text or "")
    mgmt = TEXT_MGMT.search(text or "")
    if not daemon and not mgmt:
        return None
    return dict(daemon_status=daemon.group(1) if daemon else None,
                management_url=mgmt.group(2) if mgmt and mgmt.group(2) else None,
                management_connected=bool(mgmt and mgmt.group(1).lower() == "connected"), format="text")


def decide(status, management_url):
    """(reason, actions): the idempotency guard."""
    connected = status["management_connected"] and status["daemon_status"] in (None, "Connected")
    if status["daemon_status"] in NOT_LOGGED_IN or not connected:
        return "not-connected", ["up"]
    if normalize_url(status["management_url"]) != normalize_url(management_url):
        return "management-url-drift", ["down", "up"]
    return "connected", []


def command(executable, action, management_url, key_file=None):
    if action == "down":
        return [executable, "down"]
    argv = [executable, "up", "--management-url", management_url]
    if key_file is not None:
        argv += ["--setup-key-file", key_file]
    return argv


class Enroller:
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.key = self.params["setup_key"]

    def scrub(self, text):
        """Defence in depth: even if the agent echoed the key, it never leaves the module."""
        text = text or ""
        return text.replace(self.key, "********") if self.key else text

    def executable(self, required):
        return self.module.get_bin_path(self.params["executable"], required=required)

    def read_status(self, exe):
        rc, out, err = self.module.run_command([exe, "status", "--json"])
        status = parse_status(out) or parse_status(err)
        if status is None:
            raise EnrollError("`%s status --json` gave no status it could read (rc=%s): %s"
                              % (exe, rc, self.scrub((err or out).strip())[:500]))
        return status

    def run_cmd(self, argv, environ=None):
        rc, out, err = self.module.run_command(argv, environ_update=environ or {})
        if rc != 0:
            detail = self.scrub((err or out).strip())[:500]
            raise EnrollError("`%s` failed (rc=%s): %s" % (" ".join(argv[:2]), rc, detail))

    def up(self, argv):
        if self.params["setup_key_via"] == "env":
            self.run_cmd(argv, {KEY_ENV: self.key})
            return
        fd, path = tempfile.mkstemp(prefix="netbird-key-")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(self.key)
            self.run_cmd(argv[:-1] + [path])
        finally:
            os.unlink(path)

    def run(self, result):
        params = self.params
        plan = params["plan"]
        if params["status_output"] is not None:
            if not plan:
                raise EnrollError("status_output [plan-only] is only allowed with plan=true")
            status = parse_status(params["status_output"])
            if status is None:
                raise EnrollError("status_output [format] is neither `netbird status --json` nor its text form")
            exe = params["executable"]
        else:
            exe = self.executable(required=not plan)
            if exe is None:
                status = dict(daemon_status=None, management_url=None, management_connected=False, format="absent")
                exe = params["executable"]
            else:
                status = self.read_status(exe)
        result["status"] = status
        result["reason"], result["actions"] = decide(status, params["management_url"])
        via_file = params["setup_key_via"] == "file"
        result["key_transport"] = "file:--setup-key-file" if via_file else "env:" + KEY_ENV
        placeholder = "<0600 temporary file>" if via_file else None
        result["commands"] = [command(exe, a, params["management_url"], placeholder) for a in result["actions"]]
        result["diff"] = dict(
            before=dict(management_url=status["management_url"], connected=status["management_connected"]),
            after=dict(management_url=params["management_url"] if result["actions"] else status["management_url"],
                       connected=True if result["actions"] else status["management_connected"]))
        if not result["actions"] or plan:
            return
        if not self.key:
            raise EnrollError("setup_key [required] the agent is %s, so it must run `netbird up`, which needs a "
                              "setup key" % result["reason"])
        result["changed"] = True
        if self.module.check_mode:
            return
        for argv in result["commands"]:
            if argv[1] == "up":
                self.up(argv)
                result["enrolled"] = True
            else:
                self.run_cmd(argv)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            management_url=dict(type="str", required=True),
            setup_key=dict(type="str", no_log=True),
            setup_key_via=dict(type="str", default="env", choices=["env", "file"]),
            executable=dict(type="str", default="netbird"),
            plan=dict(type="bool", default=False),
            status_output=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    result = dict(changed=False, enrolled=False, actions=[], commands=[])
    enroller = Enroller(module)
    try:
        enroller.run(result)
    except EnrollError as exc:
        module.fail_json(msg=enroller.scrub(str(exc)), **result)
    except Exception as exc:  # never a traceback: it could quote the key
        module.fail_json(msg="internal error in netbird_enroll (%s); please report it" % type(exc).__name__, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
