# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Create or delete the lab's network namespaces and underlay from inventories/lab (needs root).

Usage: topology.py [--inventory DIR] [--prefix P] [--hosts h1,h2] {up,services,agents,down,status,bringup}

- up: one namespace <prefix>-<host> per inventory host (group_vars/all/lab.yml, hosts.yml), plus
  <prefix>-underlay holding one bridge per segment of lab_segments, each with its gateway address and
  forwarding between them (the "WAN"). Each lab_underlay entry of a host is a veth named
  <segment>-wan in the host (the name the documents give as underlayInterface, e.g. private-wan) with
  that address, its peer enslaved to the segment's bridge; the host's default route is the gateway of
  its first segment; /run/<prefix>/<host>/frr/daemons as the frr package ships it. Re-running it is a
  no-op; a host that is half there is rebuilt.
  Then what the lab's BGP and enrollment need on this machine's kernel (no tunnels: those need the qemu
  guest, make test-kernel): each host's identity addresses from the documents (RR and leaf tunnelAddress,
  the leaf's ownedAddresses) as /32s on lo; each other host's tunnel /32 routed via its public-segment
  address (what molecule/mesh/prepare.yml does with on-link routes: BGP runs between the documents'
  addresses without a tunnel); zebra+bgpd+bfdd per host in the foreground of their own session
  (tests/netns/daemons.py Frr), vty under /run/<prefix>/<host>/frr/run; and two generated files that are
  never committed: /run/<prefix>/vault.yml (test tokens, 0600) and /run/<prefix>/lab-vars.yml (0600,
  pass with -e @): boma_vault_file, the shared sam_resources with each policy's joinTokenFrom.file moved to
  /run/<prefix>/<host>/join-tokens/ (nothing that expires, no keys: the leaves' claims are the inventory's
  intents, which the leaf agents sign and renew). An existing vault and lab-vars.yml are kept.
  /run/<prefix>/collections holds boma.mesh as a symlink to this tree, for ANSIBLE_COLLECTIONS_PATH (other
  lanes rebuild .build while the lab runs).
- services: start each RR's enrollment service launcher (written by the sam_rr role under
  /run/<prefix>/<host>/bin) inside its namespace, in the background, log /run/<prefix>/<host>/service.log;
  waits until it listens. An RR whose service runs is left alone.
- agents: start each leaf's agent launcher (boma-sam-agent, written by the sam_leaf role under
  /run/<prefix>/<host>/bin; the daemon systemd would run) inside its namespace, log
  /run/<prefix>/<host>/agent.log: it renews the lease, refreshes the RRSet and applies changes between runs.
- down: kill what runs in those namespaces (FRR, services), delete them and /run/<prefix> (the per-host
  files the roles wrote, inventories/lab lab_root, the vault, tokens and databases). Deleting what is
  already gone is fine.
- bringup: what `make lab` runs, in order: up, `site.yml --tags service --limit sam_rrs`, services,
  `site.yml --tags mesh`, agents, status --wait (default 60 s; exit 1 when BGP has not converged).
- status: the namespaces of the lab that exist and the tunnel links boma.mesh manages in each (by mode);
  when FRR runs, per RR: BGP sessions, admitted claims (samctl claim list on the unix socket) and BGP
  routes, per leaf: BGP routes.

This module is the lab's command line and its sequence (up, down, bringup, status); labnet.py (namespaces,
underlay, identity /32s), labvars.py (identities, test vault, lab-vars.yml) and labdaemons.py (FRR, the RR
services, the leaf agents) hold the pieces. The namespace and daemon helpers underneath are tests/netns/procs.py
and daemons.py (shared with the test harness, not duplicated).
"""

import argparse
import contextlib
import ipaddress
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(HERE))
# The pieces live in sibling modules (each one concern); their names are re-exported here because the lab
# tests and guestlab.py use the lab through this module.
from labdaemons import (  # noqa: E402, F401 - re-exported  # pylint: disable=unused-import
    _frr,
    _frr_running,
    _Keeper,
    _service_pid,
    _tracked,
    agent_pid,
    agents_up,
    frr_up,
    gobgp,
    gobgp_running,
    gobgp_up,
    services_up,
)
from labnet import (  # noqa: E402, F401 - re-exported
    UNDERLAY,
    _host_up,
    _identity_up,
    _underlay_up,
    ns_name,
    tunnel_summary,
)
from labvars import identities, run_dir, saved_rr_bgp, write_lab_vars  # noqa: E402, F401 - re-exported
from netns.procs import _netns_list, _remove_frr_tmp, _remove_netns  # noqa: E402

from boma_mesh_utils.sam.core.bgp_status_gobgp import STATES as GOBGP_STATES  # noqa: E402

API_PREFIX = "/api/control.routerd.net/v1alpha1"


def load(inventory, prefix=None, kernel="host", rr_bgp=None):
    """The lab description: prefix, segments, and {host: [(segment, address), ...]} in inventory order.

    ``kernel``: "host" (this machine's kernel: no tunnels) or "guest" (the qemu guest, guestlab.py); underlay
    entries and segments with a ``kernel:`` key exist only in that variant. ``rr_bgp``: {RR: "gobgp"} for RRs
    that run gobgpd instead of FRR (sam_rr__bgp_daemon through lab_rr_bgp_daemons); None: what the running lab
    was brought up with.
    """
    inventory = Path(inventory)
    lab = yaml.safe_load((inventory / "group_vars" / "all" / "lab.yml").read_text())
    hosts, ifnames = {}, {}

    def mine(entry):
        return entry.get("kernel", kernel) == kernel

    def walk(group):
        for name, hvars in ((group or {}).get("hosts") or {}).items():
            underlay = [u for u in (hvars or {}).get("lab_underlay", []) if mine(u)]
            hosts[name] = [(u["segment"], ipaddress.ip_interface(u["address"])) for u in underlay]
            ifnames.update({(name, u["segment"]): u["ifname"] for u in underlay if "ifname" in u})
        for child in ((group or {}).get("children") or {}).values():
            walk(child)

    walk(yaml.safe_load((inventory / "hosts.yml").read_text())["all"])
    segments = {name: (ipaddress.ip_network(seg["prefix"]), ipaddress.ip_address(seg["gateway"]))
                for name, seg in lab["lab_segments"].items() if mine(seg)}
    for host, links in hosts.items():
        for segment, addr in links:
            if segment not in segments or addr.ip not in segments[segment][0]:
                raise ValueError(f"{host}: {addr} is not in a segment of lab_segments ({segment})")
    groups = {}

    def walk_groups(group):
        for name, child in ((group or {}).get("children") or {}).items():
            for host in (child or {}).get("hosts") or {}:
                groups[host] = name
            walk_groups(child)

    walk_groups(yaml.safe_load((inventory / "hosts.yml").read_text())["all"])
    prefix = prefix or lab["lab_netns_prefix"]
    rr_bgp = saved_rr_bgp(prefix) if rr_bgp is None else dict(rr_bgp)
    wrong = {h: d for h, d in rr_bgp.items() if groups.get(h) != "sam_rrs" or d not in ("frr", "gobgp")}
    if wrong:
        raise ValueError(f"--rr-bgp {wrong}: only the RRs ({sorted(h for h, g in groups.items() if g == 'sam_rrs')})"
                         " choose, frr or gobgp")
    return {"prefix": prefix, "segments": segments, "hosts": hosts, "groups": groups, "inventory": inventory,
            "kernel": kernel, "ifnames": ifnames, "rr_bgp": rr_bgp}


# --------------------------------------------------------------------------- status


def _vtysh(frr, command):
    res = subprocess.run(frr._vtysh_argv() + ["-c", command], capture_output=True, text=True, timeout=30,
                         check=False)  # fmt: skip
    return json.loads(res.stdout) if res.returncode == 0 and res.stdout.strip() else None


def _gobgp_status(lab, host, row):
    row["frr"] = gobgp_running(lab, host)
    if row["frr"]:
        row["sessions"] = {(n.get("state") or {}).get("neighbor_address"):
                           GOBGP_STATES.get((n.get("state") or {}).get("session_state"), "?")
                           for n in gobgp(lab, host, "neighbor") or ()}
        row["routes"] = sorted(gobgp(lab, host, "global", "rib", "-a", "ipv4") or {}, key=ipaddress.ip_network)
        row["fib"] = []       # an RR's gobgpd installs nothing in the kernel (no zebra)
    return row


def host_status(lab, host, keeper):
    row = {"host": host, "netns": ns_name(lab, host) in set(_netns_list()), "tunnels": tunnel_summary(lab, host)}
    if lab.get("rr_bgp", {}).get(host) == "gobgp":
        _gobgp_status(lab, host, row)
        frr = None
    else:
        frr = _frr(lab, host, keeper)
        row["frr"] = _frr_running(frr)
    if row["frr"] and frr is not None:
        summary = _vtysh(frr, "show bgp ipv4 unicast summary json") or {}
        peers = summary.get("peers", {})
        row["sessions"] = {p: v.get("state") for p, v in peers.items()}
        routes = (_vtysh(frr, "show bgp ipv4 unicast json") or {}).get("routes", {})
        row["routes"] = sorted(routes, key=ipaddress.ip_network)
        kernel = _vtysh(frr, "show ip route bgp json") or {}
        row["fib"] = sorted(p for p, entries in kernel.items() if any(e.get("installed") for e in entries))
    if lab["groups"].get(host) == "sam_rrs":
        row["service"] = _service_pid(lab, host) is not None
        if row["service"]:
            hostdir = run_dir(lab, host)
            res = subprocess.run([str(hostdir / "bin" / "samctl"), "claim", "list", "--rr-socket",
                                  str(hostdir / "state" / f"{host}.sock"), "--admin-token-file",
                                  str(hostdir / "etc" / "admin-token"), "-o", "json"],
                                 capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
            with contextlib.suppress(ValueError):
                items = json.loads(res.stdout).get("items", [])
                row["claims"] = sorted(i.get("name", "?") for i in items if i.get("active") and not i.get("revoked"))
    return row


def converged(rows):
    """Every RR has a session Established with every leaf, every leaf sees every other leaf's owned /32s."""
    leaves = [r for r in rows if "service" not in r]
    owned = {r["host"]: r.get("owned", ()) for r in leaves}
    for r in rows:
        if not r.get("sessions") or any(s != "Established" for s in r["sessions"].values()):
            return False
        if "service" in r and len(r["sessions"]) < len(leaves):   # an RR: one session per leaf at least
            return False
        if r in leaves and not all(set(o) <= set(r.get("fib", ())) for h, o in owned.items() if h != r["host"]):
            return False
    return True


def status(lab, keeper=None, wait=0):
    keeper = keeper or _Keeper(lab)
    ids = identities(lab)

    def collect():
        rows = [host_status(lab, host, keeper) for host in lab["hosts"]]
        for r in rows:
            r["owned"] = [str(i.network) for i in ids[r["host"]][1]]
        return rows

    rows = collect()
    if wait:
        start = time.monotonic()
        while not converged(rows) and time.monotonic() - start < wait:
            time.sleep(0.5)
            rows = collect()
        print(f"converged: {converged(rows)} (waited {time.monotonic() - start:.1f}s, at most {wait}s)")
    print(f"lab {lab['prefix']} " + ("(qemu guest: Debian's kernel, tunnels on)" if lab["kernel"] == "guest"
                                     else "(this kernel: tunnels off; make lab runs them in the qemu guest)"))
    print(f"{'host':10} {'netns':6} {'bgp':4} {'svc':4} {'tunnels (boma.mesh)':27} {'BGP sessions':52} "
          f"{'claims admitted':26} BGP routes (FIB)")
    for r in rows:
        sessions = ",".join(f"{p}={s[:5]}" for p, s in sorted(r.get("sessions", {}).items())) or "-"
        claims = ",".join(r["claims"]) if "claims" in r else "-"
        routes = ",".join(f"{p}{'*' if p in r.get('fib', ()) else ''}" for p in r.get("routes", [])) or "-"
        print(f"{r['host']:10} {'up' if r['netns'] else 'absent':6} {'up' if r['frr'] else '-':4} "
              f"{('up' if r.get('service') else 'down') if 'service' in r else '':4} {r['tunnels'] or '-':27} "
              f"{sessions:52} {claims:26} "
              f"{routes}")
    print("(* = installed in the namespace's kernel by zebra)")
    return rows


def _seed_files(lab, host):
    """What the frr package would have installed on a real host, in the host's own directory.

    The namespaces share this machine's filesystem, so the roles' FRR paths are per host under /run/<prefix>
    (group_vars/sam_*); the roles edit the daemons file the package ships and never create it.
    """
    frr = Path("/run") / lab["prefix"] / host / "frr"
    frr.mkdir(parents=True, exist_ok=True)
    daemons = frr / "daemons"
    if not daemons.exists():
        shipped = Path("/etc/frr/daemons")
        daemons.write_text(shipped.read_text() if shipped.is_file() else "zebra=yes\nbgpd=no\n")


def up(lab, hosts=None, daemons=False):
    """Namespaces and underlay; with ``daemons`` also loopbacks, routes, FRR and the lab's generated vars."""
    underlay = _underlay_up(lab)
    built = []
    for host in hosts or lab["hosts"]:
        if _host_up(lab, host, underlay):
            built.append(host)
        _seed_files(lab, host)
    if daemons:
        ids = identities(lab)
        keeper = _Keeper(lab)
        for host in hosts or lab["hosts"]:
            if lab["kernel"] == "host":   # in the guest the roles' tunnels carry these addresses
                _identity_up(lab, host, ids)
            if lab["rr_bgp"].get(host) == "gobgp":
                gobgp_up(lab, host, keeper)
            else:
                frr_up(lab, host, keeper)
        if lab["kernel"] == "host":       # the guest lab's controller side writes them (guestlab.py)
            write_lab_vars(lab)
            collections(lab)
    return built


def collections(lab):
    """/run/<prefix>/collections: boma.mesh as a symlink to this tree (make collection rebuilds .build)."""
    link = run_dir(lab) / "collections" / "ansible_collections" / "boma" / "mesh"
    if not link.is_symlink():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(ROOT)
    return link.parents[2]


def down(lab):
    removed = []
    for host in [*lab["hosts"], UNDERLAY]:
        name = ns_name(lab, host)
        if name in _netns_list():
            _remove_netns(name)
            removed.append(name)
    # The daemons died with their namespaces (_remove_netns kills what runs there); FRR leaves
    # /var/tmp/frr/<daemon>.<pid>/ behind when killed.
    _remove_frr_tmp([pid for pid, _start in _tracked(run_dir(lab) / "pids.json")])
    shutil.rmtree(run_dir(lab), ignore_errors=True)
    return removed


def bringup(lab, wait=60, env=None):
    """What `make lab` runs: up, the RRs' service install run, their launchers, the mesh run, the leaf agents,
    status --wait.

    The playbooks run with ANSIBLE_COLLECTIONS_PATH=/run/<prefix>/collections (boma.mesh as a symlink to
    this tree) and ANSIBLE_LOCAL_TEMP under /run/<prefix>; ``env`` (default os.environ) is the rest of
    their environment. Returns the status rows; raises SystemExit when a step fails or BGP has not
    converged within ``wait`` seconds.
    """
    start = time.monotonic()
    up(lab, daemons=True)
    base = run_dir(lab)
    env = dict(os.environ if env is None else env)
    env.update(ANSIBLE_COLLECTIONS_PATH=str(base / "collections"), ANSIBLE_LOCAL_TEMP=str(base / "ansible-tmp"))
    play = [str(Path(sys.executable).parent / "ansible-playbook"), str(ROOT / "playbooks" / "site.yml"),
            "-i", str(lab["inventory"]), "-e", f"lab_netns_prefix={lab['prefix']}", "-e", f"@{base / 'lab-vars.yml'}"]

    def run(*args):
        sys.stdout.flush()
        res = subprocess.run([*play, *args], cwd=ROOT, env=env, check=False)
        if res.returncode:
            raise SystemExit(f"lab {lab['prefix']}: ansible-playbook {' '.join(args)} failed ({res.returncode})")

    # Install run: the RRs' service concern (the BGP step reads the admitted claims from the running service).
    run("--tags", "service", "--limit", "sam_rrs")
    services_up(lab)
    run("--tags", "mesh")
    agents_up(lab)   # the leaves' agents (systemd would run them): leases renewed between runs
    rows = status(lab, wait=wait)
    if not converged(rows):
        raise SystemExit(f"lab {lab['prefix']}: BGP did not converge within {wait}s")
    print(f"lab {lab['prefix']} up in {(time.monotonic() - start) * 1000:.0f} ms "
          "(this kernel: tunnels off; make lab runs them in the qemu guest)")
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--inventory", default=str(ROOT / "inventories" / "lab"))
    parser.add_argument("--prefix", help="namespace prefix (default: lab_netns_prefix of the inventory)")
    parser.add_argument("--hosts", help="comma-separated subset of the inventory hosts (up only)")
    parser.add_argument("--no-daemons", action="store_true",
                        help="up: namespaces and underlay only (no loopbacks, FRR, vault or lab-vars.yml)")
    parser.add_argument("--wait", type=float, default=0,
                        help="status, bringup: wait up to this many seconds for BGP and the leaves' /32s to converge")
    parser.add_argument("--kernel", choices=("host", "guest"), default="host",
                        help="guest: run inside the lab's qemu guest (guestlab.py drives it from the host)")
    parser.add_argument("--rr-bgp", metavar="RR=gobgp,...",
                        help="up, bringup: RRs that run gobgpd instead of FRR (sam_rr__bgp_daemon), e.g. rr-a=gobgp")
    parser.add_argument("action", choices=("up", "services", "agents", "down", "status", "bringup"))
    args = parser.parse_args(argv)
    try:
        rr_bgp = dict(item.split("=", 1) for item in args.rr_bgp.split(",")) if args.rr_bgp else None
        lab = load(args.inventory, args.prefix, args.kernel, rr_bgp)
    except ValueError as exc:
        parser.error(str(exc))
    hosts = args.hosts.split(",") if args.hosts else None
    unknown = sorted(set(hosts or ()) - set(lab["hosts"]))
    if unknown:
        parser.error(f"unknown hosts {unknown} (inventory: {sorted(lab['hosts'])})")
    if args.action == "up":
        built = up(lab, hosts, daemons=not args.no_daemons)
        print(f"lab {lab['prefix']}: created {built or 'nothing (already up)'}")
        if not args.no_daemons:
            print(f"lab {lab['prefix']}: zebra+bgpd per host, identity /32s on lo; "
                  f"-e @{run_dir(lab) / 'lab-vars.yml'} (vault, lab join-token paths); "
                  "tunnels off (need the qemu guest)")
    elif args.action == "agents":
        print(f"lab {lab['prefix']}: started agents on {agents_up(lab, hosts) or 'nothing (already running)'}")
    elif args.action == "services":
        print(f"lab {lab['prefix']}: started services on {services_up(lab, hosts) or 'nothing (already running)'}")
    elif args.action == "bringup":
        bringup(lab, wait=args.wait or 60)
    elif args.action == "down":
        print(f"lab {lab['prefix']}: removed {down(lab) or 'nothing'}")
    else:
        existing = set(_netns_list())
        for host in [*lab["hosts"], UNDERLAY]:
            print(f"{ns_name(lab, host):32} {'up' if ns_name(lab, host) in existing else 'absent'}")
        return 0 if converged(status(lab, wait=args.wait)) or not args.wait else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
