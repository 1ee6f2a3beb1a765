# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Create or delete the lab's network namespaces and underlay from inventories/lab (needs root).

Usage: topology.py [--inventory DIR] [--prefix P] [--hosts h1,h2] {up,services,down,status,bringup}

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
  /run/<prefix>/<host>/join-tokens/, and the leaves' claims re-signed now (fresh joinNonce, current
  joinTimestamp, the lab join token). Existing vault and claims are kept (the second run submits the same).
  /run/<prefix>/collections holds boma.mesh as a symlink to this tree, for ANSIBLE_COLLECTIONS_PATH (other
  lanes rebuild .build while the lab runs).
- services: start each RR's enrollment service launcher (written by the sam_rr role under
  /run/<prefix>/<host>/bin) inside its namespace, in the background, log /run/<prefix>/<host>/service.log;
  waits until it listens. An RR whose service runs is left alone.
- down: kill what runs in those namespaces (FRR, services), delete them and /run/<prefix> (the per-host
  files the roles wrote, inventories/lab lab_root, the vault, tokens and databases). Deleting what is
  already gone is fine.
- bringup: what `make lab` runs, in order: up, `site.yml --tags service --limit sam_rrs`, services,
  `site.yml --tags mesh`, status --wait (default 60 s; exit 1 when BGP has not converged).
- status: the namespaces of the lab that exist; when FRR runs, per RR: BGP sessions, admitted claims
  (samctl claim list on the unix socket) and BGP routes, per leaf: BGP routes.

The namespace and daemon helpers are tests/netns/procs.py and daemons.py (shared with the test harness,
not duplicated).
"""

import argparse
import base64
import contextlib
import copy
import datetime
import ipaddress
import json
import os
import pwd
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml
from pyroute2 import NetNS, netns

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from netns.daemons import Frr  # noqa: E402 - needs tests/ on sys.path
from netns.procs import (  # noqa: E402
    _mkdir,
    _netns_list,
    _pid_alive,
    _proc_stat,
    _remove_frr_tmp,
    _remove_netns,
    _write,
    wait_for,
)

from boma_sam import payload  # noqa: E402
from boma_sam.fields import format_time  # noqa: E402

UNDERLAY = "underlay"
SERVICE = "boma-sam-rr"   # sam_rr__service_name (the launcher under <host>/bin)
API_PREFIX = "/api/control.routerd.net/v1alpha1"


def load(inventory, prefix=None, kernel="host"):
    """The lab description: prefix, segments, and {host: [(segment, address), ...]} in inventory order.

    ``kernel``: "host" (this machine's kernel: no tunnels) or "guest" (the qemu guest, guestlab.py); underlay
    entries and segments with a ``kernel:`` key exist only in that variant.
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
    return {"prefix": prefix or lab["lab_netns_prefix"], "segments": segments, "hosts": hosts,
            "groups": groups, "inventory": inventory, "kernel": kernel, "ifnames": ifnames}


def ifname(lab, host, segment):
    """The host's interface on a segment: the entry's ifname (the documents' underlayInterface) or <segment>-wan."""
    return lab["ifnames"].get((host, segment), f"{segment}-wan")


def run_dir(lab, host=None):
    base = Path("/run") / lab["prefix"]
    return base / host if host else base


# --------------------------------------------------------------------------- documents


def _docs(lab):
    """(sam_resources, {host: host_vars}) from the inventory (group_vars/all/sam.yml and host_vars, symlinks)."""
    inv = lab["inventory"]
    shared = yaml.safe_load((inv / "group_vars" / "all" / "sam.yml").read_text())["sam_resources"]
    hostvars = {}
    for host in lab["hosts"]:
        path = inv / "host_vars" / f"{host}.yml"
        hostvars[host] = yaml.safe_load(path.read_text()) if path.exists() else {}
    return shared, hostvars


def identities(lab):
    """{host: (tunnel /32s, owned /32s)}: RRs from the SAMRRSet members, leaves from their claim."""
    shared, hostvars = _docs(lab)
    out = {host: ([], []) for host in lab["hosts"]}
    for doc in shared:
        if doc["kind"] == "SAMRRSet":
            for member in doc["spec"].get("members", []):
                if member.get("nodeRef") in out and member.get("tunnelAddress"):
                    out[member["nodeRef"]][0].append(ipaddress.ip_interface(member["tunnelAddress"]))
    for host, hv in hostvars.items():
        for doc in hv.get("sam_node_resources") or []:
            if doc["kind"] == "SAMEnrollmentClaim":
                out[host][0].append(ipaddress.ip_interface(doc["spec"]["tunnelAddress"]))
                owned = doc["spec"].get("mobility", {}).get("ownedAddresses", [])
                out[host][1].extend(ipaddress.ip_interface(a) for a in owned)
    return out


def _public(lab, host):
    """The host's address on the segment every lab host shares (the leaves' endpoint segment)."""
    shared = set.intersection(*({seg for seg, _a in links} for links in lab["hosts"].values()))
    for segment, addr in lab["hosts"][host]:
        if segment in shared:
            return segment, addr.ip
    raise ValueError(f"{host}: no segment shared by every lab host")


def _identity_up(lab, host, ids):
    """Tunnel and owned /32s on lo; the other hosts' tunnel /32s via their address on the shared segment."""
    segment, _addr = _public(lab, host)
    with NetNS(ns_name(lab, host)) as ipr:
        lo = _index(ipr, "lo")
        for iface in [*ids[host][0], *ids[host][1]]:
            if not _has_addr(ipr, lo, iface):
                ipr.addr("add", index=lo, address=str(iface.ip), prefixlen=iface.network.prefixlen)
        dev = _index(ipr, ifname(lab, host, segment))
        for other, (tunnels, _owned) in ids.items():
            if other == host:
                continue
            gateway = str(_public(lab, other)[1])
            for iface in tunnels:
                ipr.route("replace", dst=str(iface.ip), dst_len=32, gateway=gateway, oif=dev)


def _signed(resources, token):
    out = copy.deepcopy(resources)
    for doc in out:
        if doc["kind"] == "SAMEnrollmentClaim":
            doc["spec"].update(joinNonce=f"lab-{doc['spec']['leafID']}-{time.time_ns()}",
                               joinTimestamp=format_time(datetime.datetime.now(datetime.timezone.utc)))
            doc["spec"]["joinHMAC"] = payload.join_hmac(token.encode(), doc["spec"])
    return out


def write_lab_vars(lab, wg_public=None, extra=None):
    """/run/<prefix>/vault.yml (test values) and lab-vars.yml (the lab-only overrides), kept when present.

    ``wg_public`` ({host: public key}, the guest lab's generated WireGuard keys) replaces the documents'
    example keys before the claims are signed; ``extra`` is merged into lab-vars.yml.
    """
    base = _mkdir(run_dir(lab), mode=0o700)
    vault_path, vars_path = base / "vault.yml", base / "lab-vars.yml"
    shared, hostvars = _docs(lab)
    policies = [d["metadata"]["name"] for d in shared if d["kind"] == "SAMEnrollmentPolicy"]
    if vault_path.exists():
        vault = yaml.safe_load(vault_path.read_text())
    else:
        vault = {"vault": {"sam": {"api_token": "lab-api-" + secrets.token_hex(16),
                                   "admin_token": "lab-admin-" + secrets.token_hex(16),
                                   "join_tokens": {p: "lab-join-" + secrets.token_hex(16) for p in policies}}}}
        _write(vault_path, "---\n# boma.mesh lab test values (tools/lab/topology.py); removed by down.\n"
               + yaml.safe_dump(vault), mode=0o600)
    if vars_path.exists():
        return vault_path, vars_path
    lab_shared = copy.deepcopy(shared)
    hostvars = {h: _with_wg_keys(hv, h, wg_public or {}) for h, hv in hostvars.items()}
    for member in (m for d in lab_shared if d["kind"] == "SAMRRSet" for m in d["spec"].get("members", [])):
        if member.get("wireGuard") and member.get("nodeRef") in (wg_public or {}):
            member["wireGuard"]["publicKey"] = wg_public[member["nodeRef"]]
    for doc in lab_shared:
        if doc["kind"] == "SAMEnrollmentPolicy" and "joinTokenFrom" in doc["spec"]:
            # Per RR host (templated by Ansible for each host): the role installs the token there.
            doc["spec"]["joinTokenFrom"]["file"] = "{{ lab_dir }}/join-tokens/" + doc["metadata"]["name"]
    tokens = vault["vault"]["sam"]["join_tokens"]
    nodes = {}
    for host, hv in hostvars.items():
        resources = hv.get("sam_node_resources") or []
        claim = next((d for d in resources if d["kind"] == "SAMEnrollmentClaim"), None)
        if claim is not None:
            policy = claim["spec"]["policyRef"].split("/", 1)[-1]
            resources = _signed(resources, tokens[policy])
        nodes[host] = resources
    data = {"boma_vault_file": str(vault_path), "sam_resources": lab_shared,
            "lab_node_resources": nodes, "sam_node_resources": "{{ lab_node_resources[inventory_hostname] }}",
            **(extra or {})}
    # JSON (valid YAML): joinTimestamp stays the exact signed text, not a YAML timestamp.
    _write(vars_path, json.dumps(data, indent=1) + "\n", mode=0o600)
    return vault_path, vars_path


def _with_wg_keys(hostvars, host, wg_public):
    out = copy.deepcopy(hostvars)
    for doc in out.get("sam_node_resources") or []:
        if doc["kind"] == "SAMEnrollmentClaim" and doc["spec"].get("wireGuard") and host in wg_public:
            doc["spec"]["wireGuard"]["publicKey"] = wg_public[host]
    return out


def wg_keys(lab):
    """Guest lab: a WireGuard key per host whose documents use one, where the roles keep it (<host>/etc/wg.key).

    The roles would generate them too, but the documents (and the claims' HMAC) must carry the public keys
    before the first run, as an operator's would. Returns {host: public key}; an existing key is kept.
    """
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415 - guest lab only
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey  # noqa: PLC0415

    shared, hostvars = _docs(lab)
    users = {m["nodeRef"] for d in shared if d["kind"] == "SAMRRSet" for m in d["spec"].get("members", [])
             if m.get("wireGuard")}
    users |= {h for h, hv in hostvars.items() for d in hv.get("sam_node_resources") or []
              if d["kind"] == "SAMEnrollmentClaim" and d["spec"].get("wireGuard")}
    raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
    out = {}
    for host in sorted(users & set(lab["hosts"])):
        path = run_dir(lab, host) / "etc" / "wg.key"
        if not path.exists():
            _mkdir(path.parent, mode=0o700)
            key = base64.b64encode(X25519PrivateKey.generate().private_bytes(
                serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()))
            _write(path, key.decode() + "\n", mode=0o600)
        private = X25519PrivateKey.from_private_bytes(base64.b64decode(path.read_text().strip()))
        out[host] = base64.b64encode(private.public_key().public_bytes(*raw)).decode()
    return out


# --------------------------------------------------------------------------- daemons


class _Keeper:
    """What tests/netns/daemons.Frr expects of its topology: pid bookkeeping (pids.json) and the frr user."""

    def __init__(self, lab):
        self.path = run_dir(lab) / "pids.json"
        self._frr_user = pwd.getpwnam("frr")

    def _track(self, pid):
        stat = _proc_stat(pid)
        _write(self.path, json.dumps([*_tracked(self.path), [pid, stat[1] if stat else None]]))


def _tracked(path):
    """[[pid, start], ...] of the daemons started by up (pids.json)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return []


def _frr(lab, host, keeper):
    frr_dir = run_dir(lab, host) / "frr"
    vty = frr_dir / "run"
    # bfdd always: cheap, and sam_*__bgp_bfd can then be switched on by a playbook run (failover tests).
    frr = Frr(keeper, host, ns_name(lab, host), vty, ("zebra", "bgpd", "bfdd"))
    frr.config_dir, frr.config_path = str(frr_dir), str(frr_dir / "frr.conf")   # the roles' sam_*__frr_confdir
    return frr


def _frr_running(frr):
    return all(os.path.exists(os.path.join(frr.vty_dir, f"{d}.vty")) and _pid_alive(_pidfile(frr, d))
               for d in frr.daemons)  # fmt: skip


def _pidfile(frr, daemon):
    try:
        return int(Path(frr.vty_dir, f"{daemon}.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return -1


def frr_up(lab, host, keeper):
    """zebra+bgpd in the host's namespace on the roles' per-host FRR paths (kept if they already run)."""
    frr = _frr(lab, host, keeper)
    if _frr_running(frr):
        return False
    running = [d for d in frr.daemons if os.path.exists(os.path.join(frr.vty_dir, f"{d}.vty"))
               and _pid_alive(_pidfile(frr, d))]  # fmt: skip
    if "zebra" in running:   # a lab started before bfdd was in the set: start only the missing daemons
        frr.daemons = tuple(d for d in frr.daemons if d not in running)
        frr._start()
        return True
    user = keeper._frr_user
    _mkdir(frr.config_dir, owner=user, mode=0o755)
    _mkdir(frr.vty_dir, owner=user, mode=0o755)
    if not Path(frr.config_path).exists():
        _write(frr.config_path, f"frr defaults traditional\nhostname {host}\nip forwarding\n!\n", owner=user,
               mode=0o640)
    vtysh = Path(frr.config_dir) / "vtysh.conf"
    if not vtysh.exists():
        _write(vtysh, f"service integrated-vtysh-config\nhostname {host}\n", owner=user, mode=0o640)
    frr._start()
    return True


# --------------------------------------------------------------------------- enrollment services


def _service_paths(lab, host):
    hostdir = run_dir(lab, host)
    return hostdir / "bin" / SERVICE, hostdir / "service.log", hostdir / "service.pid"


def _service_pid(lab, host):
    _launcher, _log, pidfile = _service_paths(lab, host)
    with contextlib.suppress(OSError, ValueError):
        pid, start = json.loads(pidfile.read_text())
        if _pid_alive(pid, start):
            return pid
    return None


def services_up(lab, hosts=None, timeout=30):
    started = []
    for host in hosts or lab["hosts"]:
        if lab["groups"].get(host) != "sam_rrs" or _service_pid(lab, host):
            continue
        launcher, log, pidfile = _service_paths(lab, host)
        if not launcher.exists():
            raise SystemExit(f"{host}: no {launcher} (run the playbook first: the sam_rr role writes it)")
        offset = log.stat().st_size if log.exists() else 0
        with open(log, "ab") as out:
            proc = subprocess.Popen(["ip", "netns", "exec", ns_name(lab, host), str(launcher)],
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)  # fmt: skip
        stat = _proc_stat(proc.pid)
        _write(pidfile, json.dumps([proc.pid, stat[1] if stat else None]))

        def listening(log=log, offset=offset, proc=proc, host=host):
            if proc.poll() is not None:
                raise SystemExit(f"{host}: service exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
            with open(log, "rb") as fh:
                fh.seek(offset)
                return b"listening on" in fh.read()

        wait_for(listening, timeout=timeout, interval=0.1, message=f"{host}: enrollment service listening")
        started.append(host)
    return started


# --------------------------------------------------------------------------- status


def _vtysh(frr, command):
    res = subprocess.run(frr._vtysh_argv() + ["-c", command], capture_output=True, text=True, timeout=30,
                         check=False)  # fmt: skip
    return json.loads(res.stdout) if res.returncode == 0 and res.stdout.strip() else None


def host_status(lab, host, keeper):
    frr = _frr(lab, host, keeper)
    row = {"host": host, "netns": ns_name(lab, host) in set(_netns_list()), "frr": _frr_running(frr)}
    if row["frr"]:
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
    print(f"{'host':10} {'netns':6} {'frr':4} {'svc':4} {'BGP sessions':52} {'claims admitted':26} BGP routes (FIB)")
    for r in rows:
        sessions = ",".join(f"{p}={s[:5]}" for p, s in sorted(r.get("sessions", {}).items())) or "-"
        claims = ",".join(r["claims"]) if "claims" in r else "-"
        routes = ",".join(f"{p}{'*' if p in r.get('fib', ()) else ''}" for p in r.get("routes", [])) or "-"
        print(f"{r['host']:10} {'up' if r['netns'] else 'absent':6} {'up' if r['frr'] else '-':4} "
              f"{('up' if r.get('service') else 'down') if 'service' in r else '':4} {sessions:52} {claims:26} "
              f"{routes}")
    print("(* = installed in the namespace's kernel by zebra)")
    return rows


def ns_name(lab, host):
    return f"{lab['prefix']}-{host}"


def _sysctl(ns, *settings):
    # sysctl under net.* is per namespace; nsenter keeps it to the child (our process stays where it is).
    subprocess.run(["nsenter", f"--net=/run/netns/{ns}", "--", "sysctl", "-q", "-e", "-w", *settings],
                   check=True, capture_output=True, text=True)  # fmt: skip


def _index(ipr, ifname):
    found = ipr.link_lookup(ifname=ifname)
    return found[0] if found else None


def _has_addr(ipr, index, iface):
    return any(a.get("index") == index and a.get_attr("IFA_ADDRESS") == str(iface.ip)
               for a in ipr.get_addr(family=2 if iface.version == 4 else 10))  # fmt: skip


def _new_ns(name):
    netns.create(name)
    with NetNS(name) as ipr:
        ipr.link("set", index=_index(ipr, "lo"), state="up")
    _sysctl(name, "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")


def _underlay_up(lab):
    name = ns_name(lab, UNDERLAY)
    if name not in _netns_list():
        _new_ns(name)
    with NetNS(name) as ipr:
        for segment, (net, gateway) in lab["segments"].items():
            bridge = f"br-{segment}"
            if _index(ipr, bridge) is None:
                ipr.link("add", ifname=bridge, kind="bridge")
            idx = _index(ipr, bridge)
            if not _has_addr(ipr, idx, ipaddress.ip_interface(f"{gateway}/{net.prefixlen}")):
                ipr.addr("add", index=idx, address=str(gateway), prefixlen=net.prefixlen)
            ipr.link("set", index=idx, state="up")
    return name


def _host_complete(lab, host):
    name = ns_name(lab, host)
    if name not in _netns_list():
        return False
    with NetNS(name) as ipr:
        for segment, addr in lab["hosts"][host]:
            idx = _index(ipr, ifname(lab, host, segment))
            if idx is None or not _has_addr(ipr, idx, addr):
                return False
        return not lab["hosts"][host] or bool(ipr.get_default_routes(family=2))


def _host_up(lab, host, underlay):
    name = ns_name(lab, host)
    if _host_complete(lab, host):
        return False
    _remove_netns(name)   # half built (an interrupted up): start this host again from nothing
    _new_ns(name)
    with NetNS(name) as ipr, NetNS(underlay) as uipr:
        for segment, addr in lab["hosts"][host]:
            name_in_host, peer = ifname(lab, host, segment), f"{host}-{segment}"[:15]
            with contextlib.suppress(Exception):   # a peer left in the underlay by an interrupted up
                uipr.link("del", index=_index(uipr, peer))
            ipr.link("add", ifname=name_in_host, kind="veth", peer={"ifname": peer, "net_ns_fd": underlay})
            idx = _index(ipr, name_in_host)
            ipr.addr("add", index=idx, address=str(addr.ip), prefixlen=addr.network.prefixlen)
            ipr.link("set", index=idx, state="up")
            uipr.link("set", index=_index(uipr, peer), master=_index(uipr, f"br-{segment}"), state="up")
        if lab["hosts"][host]:
            gateway = lab["segments"][lab["hosts"][host][0][0]][1]
            ipr.route("add", dst="0.0.0.0", dst_len=0, gateway=str(gateway))
        # A guest "internet" segment that is not the host's first (the RRs' inet-rr): the other internet segments
        # through its gateway, so WireGuard replies leave from the documents' endpoint. Otherwise they leave via
        # the private default route, leaf-a's WireGuard roams the RR peers to 10.10.0.x, and every site.yml run
        # sets them back (changed=1).
        for segment, _addr in lab["hosts"][host][1:]:
            if segment.startswith("inet-"):
                via = lab["segments"][segment][1]
                for other, (net, _gw) in lab["segments"].items():
                    if other.startswith("inet-") and other != segment:
                        ipr.route("add", dst=str(net.network_address), dst_len=net.prefixlen, gateway=str(via))
        # Carrier comes up asynchronously; the first packet of a test must not race it.
        wait_for(lambda: all(ipr.link("get", index=_index(ipr, ifname(lab, host, s)))[0].get("IFLA_OPERSTATE") == "UP"
                             for s, _a in lab["hosts"][host]),
                 timeout=5, interval=0.02, message=f"{name} underlay up")  # fmt: skip
    return True


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
    """What `make lab` runs: up, the RRs' service install run, their launchers, the mesh run, status --wait.

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
    parser.add_argument("action", choices=("up", "services", "down", "status", "bringup", "keys"))
    args = parser.parse_args(argv)
    lab = load(args.inventory, args.prefix, args.kernel)
    hosts = args.hosts.split(",") if args.hosts else None
    unknown = sorted(set(hosts or ()) - set(lab["hosts"]))
    if unknown:
        parser.error(f"unknown hosts {unknown} (inventory: {sorted(lab['hosts'])})")
    if args.action == "up":
        built = up(lab, hosts, daemons=not args.no_daemons)
        print(f"lab {lab['prefix']}: created {built or 'nothing (already up)'}")
        if not args.no_daemons:
            print(f"lab {lab['prefix']}: zebra+bgpd per host, identity /32s on lo; "
                  f"-e @{run_dir(lab) / 'lab-vars.yml'} (vault, lab join-token paths, re-signed claims); "
                  "tunnels off (need the qemu guest)")
    elif args.action == "keys":
        print(json.dumps(wg_keys(lab)))
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
