# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# A lab tool, not part of the collection: tools/lab/topology.py puts this directory on
# ANSIBLE_CONNECTION_PLUGINS for the guest lab (make lab).
# ruff: noqa: E402
from __future__ import annotations

DOCUMENTATION = r"""
name: lab_vm
short_description: Run tasks in a network namespace inside the boma.mesh lab's qemu guest
description:
  - Sends every command, file upload and download to tools/lab/guest_agent.py in the lab's qemu guest (Debian's
    kernel, started by tools/lab/vm.py), which runs it inside the network namespace O(netns_name).
  - Pipelined module runs are served by a fork of the agent, which has the module runtime already imported
    (the guest runs under TCG, where a cold Python import of the module runtime costs seconds).
options:
  netns_name:
    description: Network namespace in the guest (a name under /run/netns).
    type: str
    vars:
      - name: inventory_hostname
      - name: ansible_netns_name
  state_file:
    description: The guest's state file written by vm.py (agent port); the token is next to it.
    type: str
    vars:
      - name: ansible_lab_vm_state
"""

import json
import os
import sys
from pathlib import Path

from ansible.errors import AnsibleConnectionFailure, AnsibleError
from ansible.module_utils.common.text.converters import to_bytes, to_text
from ansible.plugins.connection import ConnectionBase
from ansible.utils.display import Display

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import agent_proto  # noqa: E402 - tools/lab sibling module

display = Display()


class Connection(ConnectionBase):
    transport = "lab_vm"
    has_pipelining = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._address = None
        self._token = None

    def _connect(self):
        if not self._connected:
            state_path = Path(self.get_option("state_file") or "")
            try:
                state = json.loads(state_path.read_text())
                self._token = (state_path.parent / "token").read_text().strip()
            except (OSError, ValueError) as exc:
                raise AnsibleConnectionFailure("lab_vm: no running lab guest (%s: %s)" % (state_path, exc)) from None
            self._address = ("127.0.0.1", int(state["port"]))
            display.vvv("ESTABLISH LAB_VM CONNECTION TO %s" % self._netns(), host=self._play_context.remote_addr)
            self._connected = True
        return self

    def _netns(self):
        return self.get_option("netns_name") or self._play_context.remote_addr

    def _request(self, op, body=b"", **fields):
        self._connect()
        try:
            return agent_proto.request(self._address, self._token, op, body, netns=self._netns(), **fields)
        except (OSError, ConnectionError, ValueError) as exc:
            raise AnsibleConnectionFailure("lab_vm: the lab guest's agent: %s" % exc) from None

    def exec_command(self, cmd, in_data=None, sudoable=True):
        super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        display.vvv("EXEC %s" % to_text(cmd), host=self._play_context.remote_addr)
        rc, out, err = self._request("exec", to_bytes(in_data or b""), cmd=to_text(cmd), cwd="/")
        if rc == 255 and err.startswith(b"lab agent:"):
            raise AnsibleConnectionFailure(to_text(err).strip())
        return rc, out, err

    def put_file(self, in_path, out_path):
        super().put_file(in_path, out_path)
        display.vvv("PUT %s TO %s" % (in_path, out_path), host=self._play_context.remote_addr)
        try:
            data = Path(in_path).read_bytes()
        except OSError as exc:
            raise AnsibleError("lab_vm: cannot read %s: %s" % (in_path, exc)) from None
        rc, _out, err = self._request("put", data, path=to_text(out_path))
        if rc:
            raise AnsibleError("lab_vm: cannot write %s in the guest: %s" % (out_path, to_text(err).strip()))

    def fetch_file(self, in_path, out_path):
        super().fetch_file(in_path, out_path)
        display.vvv("FETCH %s TO %s" % (in_path, out_path), host=self._play_context.remote_addr)
        rc, out, err = self._request("fetch", path=to_text(in_path))
        if rc:
            raise AnsibleError("lab_vm: cannot read %s in the guest: %s" % (in_path, to_text(err).strip()))
        with open(os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as fh:
            fh.write(out)

    def close(self):
        self._connected = False
