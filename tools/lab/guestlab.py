# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""`make lab`: the runbook topology inside the qemu guest (Debian's kernel: ipip, fou, WireGuard), from the host.

Usage: guestlab.py [--prefix P] [--inventory DIR] {bringup,status,agents,down,play} [--wait S] [-- ANSIBLE ARGS]

The guest (vm.py) runs the lab's namespaces, underlay, FRR and the RR enrollment services (topology.py
--kernel guest, executed in the guest through the agent); Ansible runs here, on the host, and reaches each
namespace through the lab_vm connection (tools/lab/connection_plugins). Only the guest's kernel and
processes are in the guest: the filesystem is this machine's (read-only 9p + a tmpfs), so the same
checkout, venv and FRR binaries run on both sides.

- bringup: start the guest; `topology.py up` in it (namespaces, underlay, zebra+bgpd); lab-vars.yml here
  (the data plane on, the lab_vm connection; no keys, no signed claims: the roles create the WireGuard keys,
  the RRs serve theirs in the RRSet and the leaf agents sign the claims); `site.yml --tags service --limit
  sam_rrs`; `topology.py services` in the guest; `site.yml --tags mesh`; `topology.py agents` in the guest
  (the leaf agents as daemons); `topology.py status --wait`.
- prepare: bringup up to (not including) the mesh run (molecule/kernel's create step).
- play: ansible-playbook site.yml against the running lab with the lab's variables and connection
  (arguments after -- are passed on, e.g. `-- --tags mesh`).
- agents: start the leaf agents in the guest (`topology.py agents`; after a `play -- --tags mesh`).
- status: the status table (from the guest). down: stop the guest (everything it ran goes with it) and
  remove /run/<prefix> here.
"""

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
import topology  # noqa: E402 - sibling module
from vm import Vm  # noqa: E402

PYTHON = str(ROOT / ".venv" / "bin" / "python")


class GuestLab:
    def __init__(self, prefix=None, inventory=None):
        self.lab = topology.load(inventory or ROOT / "inventories" / "lab", prefix, kernel="guest")
        self.prefix = self.lab["prefix"]
        self.vm = Vm(self.prefix)
        self.base = topology.run_dir(self.lab)
        self.collections = self.vm.dir / "collections"

    def topology(self, *args, check=True):
        """topology.py --kernel guest ARGS inside the guest; returns its stdout."""
        cmd = shlex.join([PYTHON, str(HERE / "topology.py"), "--kernel", "guest", "--prefix", self.prefix,
                          "--inventory", str(self.lab["inventory"]), *args])
        return self.vm.run(cmd, check=check)[1]

    def env(self):
        env = dict(os.environ)
        env.update(ANSIBLE_COLLECTIONS_PATH=str(self.collections), ANSIBLE_LOCAL_TEMP=str(self.base / "ansible-tmp"),
                   ANSIBLE_CONNECTION_PLUGINS=str(HERE / "connection_plugins"))
        return env

    def play(self, *args, check=True):
        argv = [str(ROOT / ".venv" / "bin" / "ansible-playbook"), str(ROOT / "playbooks" / "site.yml"),
                "-i", str(self.lab["inventory"]), "-e", f"lab_netns_prefix={self.prefix}",
                "-e", f"@{self.base / 'lab-vars.yml'}", *args]
        sys.stdout.flush()
        res = subprocess.run(argv, cwd=ROOT, env=self.env(), check=False)
        if check and res.returncode:
            raise SystemExit(f"lab {self.prefix}: ansible-playbook {' '.join(args)} failed ({res.returncode})")
        return res.returncode

    def _link_collection(self):
        link = self.collections / "ansible_collections" / "boma" / "mesh"
        if not link.is_symlink():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(ROOT)

    def prepare(self):
        """Everything before the mesh run: guest, topology, lab-vars, the RRs' install run and services."""
        self.base.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._link_collection()
        self.vm.start(collections=self.collections)
        self.topology("up")
        topology.write_lab_vars(self.lab, extra={
            "lab_connection": "lab_vm", "ansible_lab_vm_state": str(self.vm.state_path),
            "ansible_pipelining": True, "ansible_user": "root",
            "sam_rr__manage_dataplane": True, "sam_leaf__manage_dataplane": True})
        self.play("--tags", "service", "--limit", "sam_rrs")
        self.topology("services")

    def bringup(self, wait=120):
        start = time.monotonic()
        self.prepare()
        steps = {"guest, topology and the RRs' install run": time.monotonic() - start}
        t = time.monotonic()
        self.play("--tags", "mesh")
        steps["mesh run"], t = time.monotonic() - t, time.monotonic()
        self.topology("agents")
        out = self.topology("status", "--wait", str(wait), check=False)
        steps["convergence"] = time.monotonic() - t
        print(out, end="")
        print(f"lab {self.prefix} (qemu guest) up in {time.monotonic() - start:.1f} s ("
              + ", ".join(f"{k} {v:.1f} s" for k, v in steps.items()) + ")")
        return "converged: True" in out

    def down(self):
        stopped = self.vm.stop()
        shutil.rmtree(self.base, ignore_errors=True)
        return stopped


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--prefix")
    parser.add_argument("--inventory")
    parser.add_argument("--wait", type=float, default=120)
    parser.add_argument("action", choices=("bringup", "prepare", "status", "agents", "down", "play"))
    parser.add_argument("args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    lab = GuestLab(args.prefix, args.inventory)
    if args.action == "bringup":
        return 0 if lab.bringup(args.wait) else 1
    if args.action == "prepare":
        lab.prepare()
        return 0
    if args.action == "down":
        print(f"lab {lab.prefix}: {'guest stopped' if lab.down() else 'no guest was running'}")
        return 0
    if args.action == "agents":
        print(lab.topology("agents"), end="")
        return 0
    if args.action == "play":
        return lab.play(*(args.args[1:] if args.args[:1] == ["--"] else args.args), check=False)
    print(lab.topology("status", check=False), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
