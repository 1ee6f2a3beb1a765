# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# ruff: noqa: E402

from __future__ import annotations

DOCUMENTATION = r"""
name: netns
short_description: Run tasks on the controller inside a named network namespace
version_added: 0.1.0
author: boma.mesh maintainers (@boma)
description:
  - Executes commands on the Ansible controller, like
    R(ansible.builtin.local,ansible_collections.ansible.builtin.local_connection), but inside the network namespace
    C(/run/netns/<name>) (what C(ip netns add) and pyroute2 create).
  - Only the child process enters the namespace, through C(nsenter --net=/run/netns/<name>) from util-linux;
    the controller's own process never changes namespace, so many hosts can run in parallel forks.
  - Only the network namespace changes. The mount namespace is the controller's, so files are shared with the
    controller and every other namespace host; C(put_file) and C(fetch_file) are plain local copies, and
    modules run with the controller's Python (set C(ansible_python_interpreter) to it).
  - Used by the C(inventories/lab) inventory of this collection to run the roles against a lab topology built
    from network namespaces.
options:
  netns_name:
    description:
      - Name of the network namespace, a file under C(/run/netns/).
      - An absolute path (for example C(/proc/1234/ns/net)) is used as it is.
      - Defaults to the inventory host name.
    type: str
    vars:
      - name: inventory_hostname
      - name: ansible_netns_name
  nsenter_path:
    description:
      - The C(nsenter) executable (util-linux) that enters the namespace for each command.
      - A bare name is looked up in E(PATH).
    type: str
    default: nsenter
    vars:
      - name: ansible_netns_nsenter
  become_success_timeout:
    description:
      - Seconds to wait for become to succeed when it is used (as the local connection's option).
      - The default is used when the configured value is less than 1.
    type: int
    default: 10
    vars:
      - name: ansible_netns_become_success_timeout
  become_strip_preamble:
    description:
      - Strip internal become output preceding command execution (as the local connection's option).
    type: bool
    default: true
    vars:
      - name: ansible_netns_become_strip_preamble
extends_documentation_fragment:
  - ansible.builtin.connection_pipelining
notes:
  - Needs root on the controller (entering a network namespace needs C(CAP_SYS_ADMIN)).
  - The remote user is ignored; commands run as the user running Ansible, as with the local connection.
    Because that user is root, C(become) to root is skipped by Ansible (remote user and become user are the same),
    so plays with C(become=true) work without sudo installed. Become to another user is passed to the become
    plugin as the local connection does, and the become command runs inside the namespace.
  - Unlike C(ip netns exec), C(/sys) is not remounted and C(/etc/netns/<name>/) files are not bind-mounted, so
    C(/sys/class/net) shows the controller's interfaces. Netlink (C(ip), pyroute2, this collection's modules)
    sees the namespace; fact gathering of interfaces, which reads C(/sys), does not fully.
  - A missing namespace makes the host unreachable with C(network namespace NAME does not exist (/run/netns/NAME)).
"""

EXAMPLES = r"""
# inventory: one host per namespace, modules run with the controller's Python.
# all:
#   hosts:
#     rr-a:
#       ansible_connection: boma.mesh.netns
#       ansible_python_interpreter: /usr/bin/python3
#     leaf-b:
#       ansible_connection: boma.mesh.netns
#       ansible_netns_name: lab-leaf-b

- name: Read the addresses of the namespace
  ansible.builtin.command: ip -j addr show
  changed_when: false
"""

import os
import shlex
import shutil

from ansible.errors import AnsibleConnectionFailure
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.connection.local import Connection as LocalConnection
from ansible.utils.display import Display

display = Display()

NETNS_RUN_DIR = "/run/netns"


class Connection(LocalConnection):
    """The local connection with every command wrapped in ``nsenter --net=PATH``."""

    transport = "boma.mesh.netns"
    has_pipelining = True

    def _netns_path(self):
        name = self.get_option("netns_name") or self._play_context.remote_addr
        if not name:
            raise AnsibleConnectionFailure("boma.mesh.netns: no namespace name (set ansible_netns_name)")
        if os.path.isabs(name):
            return name, name
        if "/" in name or name in (".", ".."):
            raise AnsibleConnectionFailure("boma.mesh.netns: invalid network namespace name %r" % name)
        return name, os.path.join(NETNS_RUN_DIR, name)

    def _check_netns(self):
        name, path = self._netns_path()
        try:
            found = os.stat(path)
        except FileNotFoundError:
            raise AnsibleConnectionFailure("network namespace %s does not exist (%s)" % (name, path)) from None
        except OSError as exc:
            raise AnsibleConnectionFailure("network namespace %s: cannot stat %s: %s" % (name, path, exc)) from None
        # A namespace handle lives on nsfs, like our own /proc/self/ns/net.  A plain file at the same path is
        # what a crashed `ip netns add` or an unmounted namespace leaves; nsenter's own error there is cryptic.
        if found.st_dev != os.stat("/proc/self/ns/net").st_dev:
            raise AnsibleConnectionFailure(
                "network namespace %s does not exist (%s is not a mounted namespace; "
                "remove it and recreate the namespace)" % (name, path))
        return path

    def _nsenter(self):
        nsenter = self.get_option("nsenter_path")
        found = shutil.which(nsenter)
        if not found:
            raise AnsibleConnectionFailure("boma.mesh.netns: %s not found (install util-linux)" % nsenter)
        return found

    def _connect(self):
        if not self._connected:
            path = self._check_netns()
            display.vvv("ESTABLISH NETNS CONNECTION TO %s" % path, host=self._play_context.remote_addr)
        return super()._connect()

    def exec_command(self, cmd, in_data=None, sudoable=True):
        # Checked on every command, not only at connect: the lab tool may delete a namespace between tasks,
        # and nsenter would then report only "No such file or directory".
        path = self._check_netns()
        if isinstance(cmd, (list, tuple)):
            cmd = " ".join(shlex.quote(to_text(arg)) for arg in cmd)
        # The local connection runs the string through /bin/sh; nsenter then execs the same command line.
        wrapped = "%s --net=%s -- %s" % (shlex.quote(self._nsenter()), shlex.quote(path), to_text(cmd))
        return super().exec_command(wrapped, in_data=in_data, sudoable=sudoable)
