# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""roles/_gobgp's unit drop-in as Ansible renders it: the directory of the API socket is the RuntimeDirectory
systemd creates (a mis-escaped backreference once rendered it as a control character, and gobgpd could not bind
its socket: molecule/mesh found it on real systemd), and the daemon reads the configured file."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.template:
        src: {src}
        dest: {dest}
        mode: "0644"
"""


@pytest.mark.parametrize("target, directory", [("unix:///run/gobgpd/api.sock", "gobgpd"),
                                               ("unix:///run/boma-gobgp/grpc.sock", "boma-gobgp")])
def test_the_socket_directory_is_the_runtime_directory(tmp_path, target, directory):
    play, dest = tmp_path / "play.yml", tmp_path / "boma-mesh.conf"
    play.write_text(PLAY.format(src=ROOT / "roles" / "_gobgp" / "templates" / "boma-mesh.conf.j2", dest=dest))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_HOME=str(tmp_path / "home"), ANSIBLE_LOCALHOST_WARNING="false")
    res = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), str(play),
                          "-e", f"_gobgp__api_target={target}", "-e", "_gobgp__config=/srv/gobgpd.toml"],
                         env=env, capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    lines = dest.read_text().splitlines()
    assert f"RuntimeDirectory={directory}" in lines
    start = next(line for line in lines if line.startswith("ExecStart=/"))
    assert f"--api-hosts {target}" in start and "-f /srv/gobgpd.toml" in start and "--pprof-disable" in start
    assert "ExecReload=/bin/kill -HUP $MAINPID" in lines and "User=gobgpd" in lines
