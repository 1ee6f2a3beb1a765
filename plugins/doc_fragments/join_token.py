# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared documentation of the join-token (secret) options."""


class ModuleDocFragment:

    DOCUMENTATION = r"""
options:
  secret:
    description:
      - The join token of the claim's SAMEnrollmentPolicy (the value its C(joinTokenFrom) names).
      - Surrounding whitespace is trimmed exactly as routerd trims it (Go C(strings.TrimSpace)).
      - Never logged and never returned.
      - Mutually exclusive with O(secret_file); one of them is required.
    type: str
  secret_file:
    description:
      - Path of a file on the managed host holding the join token.
      - The file bytes are trimmed exactly as routerd trims them before use.
      - The error message names the path when the file is missing, unreadable or empty; it never quotes the content.
      - Mutually exclusive with O(secret); one of them is required.
    type: path
  secret_base64:
    description:
      - The token (after trimming) is standard base64 and the key is its decoded bytes,
        as with C(joinTokenFrom.base64) in routerd.
    type: bool
    default: false
"""
