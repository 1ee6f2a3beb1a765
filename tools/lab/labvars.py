# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab's generated inputs (topology.py): identities from the documents, the test vault, lab-vars.yml with
re-signed claims, and the guest lab's WireGuard keys."""

import base64
import copy
import datetime
import ipaddress
import json
import secrets
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from netns.procs import _mkdir, _write  # noqa: E402 - needs tests/ on sys.path

from boma_mesh_utils.sam.core import payload  # noqa: E402
from boma_mesh_utils.sam.core.fields import format_time  # noqa: E402


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
