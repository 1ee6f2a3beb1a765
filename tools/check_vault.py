# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""List the secrets of the encrypted vault that are still CHANGEME (names only, never values).

Usage: check_vault.py [VAULT_FILE]   (default vault/vault.yml; password file from $ANSIBLE_VAULT_PASSWORD_FILE)
The vault is decrypted in memory with Ansible's own VaultLib; nothing is written. Exit codes:
0 every secret is set; 1 some are still CHANGEME (their dotted names are printed); 2 the vault cannot be
checked (file missing, not encrypted, password file unset/missing, wrong password, not YAML).
"""

import os
import sys
from pathlib import Path

import yaml

PLACEHOLDER = "CHANGEME"
HEADER = "$ANSIBLE_VAULT;"


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


def main(argv):
    path = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parents[1] / "vault" / "vault.yml"
    try:
        try:
            doc = yaml.safe_load(decrypt(path))
        except yaml.YAMLError:
            raise CheckError("%s decrypts to something that is not YAML" % path) from None
    except CheckError as exc:
        print("check-vault: %s" % exc, file=sys.stderr)
        return 2
    names = list(placeholders(doc or {}))
    for name in names:
        print("still %s: %s" % (PLACEHOLDER, name))
    if names:
        print("check-vault: %d secret(s) still %s; set them with `make edit-vault`" % (len(names), PLACEHOLDER))
        return 1
    print("check-vault: every secret in %s is set" % path.name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
