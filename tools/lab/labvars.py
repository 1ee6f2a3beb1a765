# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab's generated inputs (topology.py): identities from the documents, the test vault, lab-vars.yml with
the lab's overrides (nothing that expires, no keys: the leaf agents sign and renew the claims)."""

import copy
import datetime
import ipaddress
import json
import secrets
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from netns.procs import _mkdir, _write  # noqa: E402 - needs tests/ on sys.path

from boma_mesh_utils.sam.core import signing  # noqa: E402


def run_dir(lab, host=None):
    base = Path("/run") / lab["prefix"]
    return base / host if host else base


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


def saved_rr_bgp(prefix):
    """The RRs' BGP daemons a running lab was brought up with (lab-vars.yml), {} when none is written."""
    try:
        return json.loads((Path("/run") / prefix / "lab-vars.yml").read_text()).get("lab_rr_bgp_daemons") or {}
    except (OSError, ValueError):
        return {}


def bgp_router(lab, host):
    """(asn, routerID) of the host's BGPRouter in host_vars: gobgpd's [global.config] before the roles run."""
    _shared, hostvars = _docs(lab)
    spec = next(d["spec"] for d in hostvars[host]["sam_node_resources"] if d["kind"] == "BGPRouter")
    return int(spec["asn"]), str(spec["routerID"])


def write_lab_vars(lab, extra=None):
    """/run/<prefix>/vault.yml (test values) and lab-vars.yml (the lab-only overrides), kept when present.

    lab-vars.yml holds nothing that expires and no key: the vault file's path, the documents with each policy's
    join token under the RR's own directory, and ``extra``. The leaves' claims stay the inventory's intents
    (host_vars): the leaf agent signs them with the join token and its own WireGuard key, and renews them.
    """
    base = _mkdir(run_dir(lab), mode=0o700)
    vault_path, vars_path = base / "vault.yml", base / "lab-vars.yml"
    shared, _hostvars = _docs(lab)
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
    for doc in lab_shared:
        if doc["kind"] == "SAMEnrollmentPolicy" and "joinTokenFrom" in doc["spec"]:
            # Per RR host (templated by Ansible for each host): the role installs the token there.
            doc["spec"]["joinTokenFrom"]["file"] = "{{ lab_dir }}/join-tokens/" + doc["metadata"]["name"]
    data = {"boma_vault_file": str(vault_path), "sam_resources": lab_shared,
            "lab_rr_bgp_daemons": dict(lab.get("rr_bgp") or {}), **(extra or {})}
    _write(vars_path, json.dumps(data, indent=1) + "\n", mode=0o600)
    return vault_path, vars_path


def sign_now(lab, host):
    """(claim name, spec signed now, join token) of ``host``'s claim intent in host_vars, as its agent would sign
    it (tests that submit a claim themselves, e.g. after a revocation; no WireGuard key is added)."""
    _shared, hostvars = _docs(lab)
    claim = next(d for d in hostvars[host]["sam_node_resources"] if d["kind"] == "SAMEnrollmentClaim")
    vault = yaml.safe_load((run_dir(lab) / "vault.yml").read_text())["vault"]["sam"]
    token = vault["join_tokens"][claim["spec"]["policyRef"].split("/", 1)[-1]]
    spec = signing.sign_claim(claim["spec"], token.encode(), secrets.token_hex(16),
                              datetime.datetime.now(datetime.timezone.utc))
    return claim["metadata"]["name"], spec, token
