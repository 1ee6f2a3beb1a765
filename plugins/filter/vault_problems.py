# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter boma.mesh.vault_problems (documented in vault_problems.yml): the roles' vault check, in the core.

The rule lives in module_utils/sam/core/secrets.py, which the preflight report uses too; this file only checks
the argument types and decrypts inline-vaulted values for it.  No value ever reaches an error message or the
result: errors name the argument and the type, the result holds dotted names.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.boma.mesh.plugins.module_utils.sam.core import secrets

VAULTED = ("EncryptedString", "AnsibleVaultEncryptedUnicode")


def _plain(value, where):
    """``value`` with every inline-vaulted string decrypted, so that the core sees plain str."""
    if isinstance(value, dict):
        return {key: _plain(item, "%s.%s" % (where, key)) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item, where) for item in value]
    if type(value).__name__ in VAULTED:
        try:
            return str(value)
        except Exception:   # noqa: BLE001 - whatever went wrong, the message must not carry the value
            raise AnsibleFilterError("vault_problems: %s [vault] cannot be decrypted" % where) from None
    return value


def _names(value, option):
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise AnsibleFilterError("vault_problems: %s [type] must be a list of strings" % option)
    return [str(v) for v in value]


def vault_problems(vault_sam, documents=None, keys=None, policies=None):
    """{missing, unlisted, form, message}: dotted names of the vault entries that need fixing."""
    if not isinstance(vault_sam, dict):
        raise AnsibleFilterError("vault_problems: input [type] must be the vault.sam mapping, got %s"
                                 % type(vault_sam).__name__)
    if documents is not None and not isinstance(documents, (list, tuple)):
        raise AnsibleFilterError("vault_problems: documents [type] must be a list of resources, got %s"
                                 % type(documents).__name__)
    return secrets.vault_problems(_plain(vault_sam, "vault.sam"), documents or [], _names(keys, "keys") or [],
                                  _names(policies, "policies"))


class FilterModule:
    """SAM vault checks."""

    def filters(self):
        return {"vault_problems": vault_problems}
