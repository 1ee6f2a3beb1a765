# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""List the secrets of the encrypted vault that are still CHANGEME (names only, never values).

Usage: check_vault.py [--inventory DIR]... [VAULT_FILE]
(default vault/vault.yml; password file from $ANSIBLE_VAULT_PASSWORD_FILE; `make check-vault INVENTORY=DIR`)
The vault is decrypted in memory with Ansible's own VaultLib; nothing is written.

Without --inventory every leaf still CHANGEME is outstanding: the vault is checked against itself, so an entry
that is absent altogether (a vault made before the example named it) goes unnoticed. --inventory closes that
gap: the names the roles will read for that static YAML inventory's hosts are required, present and set, by
the same rules the roles' preflights apply (the NetBird setup key of every host with base__mesh_enabled; on
SAM hosts the API tokens and join tokens through core/secrets.py, as sam_rr and sam_leaf check them). A
CHANGEME entry none of the given inventories reads is then listed but does not fail (an m5-only vault may keep
the example's SAM placeholders).

Exit codes: 0 every secret is set (or every needed one, with --inventory); 1 some are outstanding (their dotted
names are printed); 2 the vault or an inventory cannot be checked (file missing, not encrypted, password file
unset/missing, wrong password, not YAML, no hosts.yml).
"""

import argparse
import os
import sys
from pathlib import Path

import yaml

PLACEHOLDER = "CHANGEME"
HEADER = "$ANSIBLE_VAULT;"
NETBIRD_KEY = "vault.netbird.setup_key"
TRUE = ("true", "yes", "on", "1")


class CheckError(Exception):
    pass


def placeholders(node, prefix=""):
    """Dotted names of every leaf equal to CHANGEME."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from placeholders(value, "%s.%s" % (prefix, key) if prefix else str(key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from placeholders(value, "%s[%d]" % (prefix, index))
    elif isinstance(node, str) and node.strip() == PLACEHOLDER:
        yield prefix


def decrypt(path):
    from ansible.parsing.vault import AnsibleVaultError, VaultLib, VaultSecret  # noqa: PLC0415 - slow import

    password_file = os.environ.get("ANSIBLE_VAULT_PASSWORD_FILE")
    if not password_file:
        raise CheckError("ANSIBLE_VAULT_PASSWORD_FILE is not set: point it at the vault password file")
    if not Path(password_file).is_file():
        raise CheckError("the vault password file %s (ANSIBLE_VAULT_PASSWORD_FILE) does not exist" % password_file)
    if os.access(password_file, os.X_OK):
        raise CheckError("the vault password file %s is executable; use a plain password file" % password_file)
    if not path.is_file():
        raise CheckError("%s does not exist: create it with `make init-vault`" % path)
    data = path.read_bytes()
    if not data.startswith(HEADER.encode()):
        raise CheckError("%s is not ansible-vault encrypted (it must start with %s): encrypt it with "
                         "`ansible-vault encrypt %s` before anything else" % (path, HEADER, path))
    password = Path(password_file).read_bytes().strip()
    try:
        return VaultLib([("default", VaultSecret(password))]).decrypt(data)
    except AnsibleVaultError:
        raise CheckError("%s cannot be decrypted with %s (wrong password?)" % (path, password_file)) from None


def _enabled(value):
    return str(value).strip().lower() in TRUE


def _claim_policy(resources):
    """The policyRef of a leaf's SAMEnrollmentClaim, as sam_leaf reads it ('' without one)."""
    for doc in resources:
        if isinstance(doc, dict) and doc.get("kind") == "SAMEnrollmentClaim":
            spec = doc.get("spec") if isinstance(doc.get("spec"), dict) else {}
            return str(spec.get("policyRef") or "").removeprefix("SAMEnrollmentPolicy/")
    return ""


def _listed(value):
    return value if isinstance(value, list) else []


def needed(inventory):
    """[(dotted name, host)]: the vault names the roles read for the hosts of one loaded inventory (no values).

    Only names leave here; the SAM rule is core/secrets.py's, run later on the decrypted vault (sam_checks).
    """
    out = []
    for host, entry in sorted(inventory["hosts"].items()):
        knobs = entry["vars"]
        # base__mesh_setup_key may be pointed elsewhere (an env lookup): then this vault does not hold the key.
        key_source = str(knobs.get("base__mesh_setup_key", NETBIRD_KEY))
        if _enabled(knobs.get("base__mesh_enabled", False)) and NETBIRD_KEY in key_source:
            out.append((NETBIRD_KEY, host))
    return out


def sam_checks(inventory):
    """[(host, keys, policies or None, resources)]: the vault_problems() calls sam_rr and sam_leaf make."""
    out = []
    for host, entry in sorted(inventory["hosts"].items()):
        knobs = entry["vars"]
        resources = _listed(knobs.get("sam_resources")) + _listed(knobs.get("sam_node_resources"))
        if "sam_rrs" in entry["groups"]:
            out.append((host, ["api_token", "admin_token"], None, resources))
        if "sam_leaves" in entry["groups"] and _enabled(knobs.get("sam_leaf__manage_enroll", True)):
            policy = _claim_policy(_listed(knobs.get("sam_node_resources")))
            out.append((host, ["api_token"], [policy] if policy else [], resources))
    return out


def inventory_problems(doc, inventories):
    """({name: sorted hosts} needed but unset or absent, [other problem messages], names the inventories read)."""
    from boma_mesh_utils.sam.core import secrets  # noqa: PLC0415 - only --inventory needs the collection's core

    vault = (doc or {}).get("vault") if isinstance(doc, dict) else None
    vault = vault if isinstance(vault, dict) else {}
    netbird = vault.get("netbird") if isinstance(vault.get("netbird"), dict) else {}
    missing, other, read = {}, [], set()
    for inventory in inventories:
        for name, host in needed(inventory):
            read.add(name)
            if secrets.unset(netbird.get(name.rsplit(".", 1)[1])):
                missing.setdefault(name, set()).add(host)
        for host, keys, policies, resources in sam_checks(inventory):
            problems = secrets.vault_problems(vault.get("sam"), resources, keys, policies)
            read.update(secrets.PREFIX + k for k in keys)
            read.update(secrets.entry_name(p) for p, _ids in secrets.policy_ids(resources, policies))
            for name in problems["missing"]:
                missing.setdefault(name, set()).add(host)
            if any(problems[kind] for kind in ("unlisted", "form", "short", "same")):
                other.append("%s: %s" % (host, secrets.message({**problems, "missing": []})))
    return {n: sorted(h) for n, h in missing.items()}, list(dict.fromkeys(other)), read


def _read_by(name, read):
    """Whether a CHANGEME leaf is one the inventories read (a rotation id sits below its policy's entry)."""
    return any(name == r or name.startswith(r + ".") for r in read)


def load_inventories(paths):
    from boma_mesh_utils.sam.cli.common import InputError  # noqa: PLC0415
    from boma_mesh_utils.sam.cli.preflight import load_inventory  # noqa: PLC0415 - the reader samctl preflight uses

    try:
        return [load_inventory(str(p)) for p in paths]
    except InputError as exc:
        raise CheckError(str(exc)) from None


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="check_vault.py", description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("vault", nargs="?", type=Path,
                        default=Path(__file__).resolve().parents[1] / "vault" / "vault.yml")
    parser.add_argument("--inventory", "-i", action="append", default=[], type=Path, metavar="DIR",
                        help="static YAML inventory whose needed vault names must be present and set (repeatable)")
    return parser.parse_args(argv[1:])


def main(argv):
    args = parse_args(argv)
    path = args.vault
    try:
        inventories = load_inventories(args.inventory) if args.inventory else []
        try:
            doc = yaml.safe_load(decrypt(path))
        except yaml.YAMLError:
            raise CheckError("%s decrypts to something that is not YAML" % path) from None
    except CheckError as exc:
        print("check-vault: %s" % exc, file=sys.stderr)
        return 2
    names = list(placeholders(doc or {}))
    if not inventories:
        return report_all(names, path)
    return report_inventories(doc, names, inventories, path)


def report_all(names, path):
    for name in names:
        print("still %s: %s" % (PLACEHOLDER, name))
    if names:
        print("check-vault: %d secret(s) still %s; set them with `make edit-vault`" % (len(names), PLACEHOLDER))
        return 1
    print("check-vault: every secret in %s is set" % path.name)
    return 0


def report_inventories(doc, names, inventories, path):
    missing, other, read = inventory_problems(doc, inventories)
    label = ", ".join(i["name"] for i in inventories)
    needed_names = [n for n in names if _read_by(n, read)]
    for name in needed_names:
        print("still %s: %s (needed by %s)" % (PLACEHOLDER, name, ", ".join(missing.get(name, ())) or label))
    for name, hosts in sorted(missing.items()):
        if name not in names:
            print("missing: %s (needed by %s)" % (name, ", ".join(hosts)))
    for line in other:
        print("problem: %s" % line)
    unused = [n for n in names if n not in needed_names]
    if unused:
        print("not needed by %s, still %s: %s" % (label, PLACEHOLDER, ", ".join(unused)))
    outstanding = len(set(missing) | set(needed_names))
    if outstanding or other:
        print("check-vault: %d secret(s) %s needs are missing or still %s%s; set them with `make edit-vault`"
              % (outstanding, label, PLACEHOLDER, " (and %d other problem(s))" % len(other) if other else ""))
        return 1
    print("check-vault: every secret %s needs is set in %s" % (label, path.name))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
