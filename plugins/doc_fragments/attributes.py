# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the attributes of every boma.mesh module mean; each module states its own support level and details."""


class ModuleDocFragment:  # pylint: disable=too-few-public-methods
    # Every module extends this first, then says per attribute how far it supports it (support, details).
    DOCUMENTATION = r"""
attributes:
  check_mode:
    description:
      - Can run in check mode and return the changed status it predicts without modifying the target.
  diff_mode:
    description:
      - Will return details on what has changed (or possibly needs changing in check mode), when in diff mode.
  idempotent:
    description:
      - When run twice in a row outside check mode, with the same arguments, the second run reports no change
        (C(changed=false)).
      - This assumes that the system controlled or queried by the module has not changed in a relevant way in
        between; the details say what the module reads or asks for on every run.
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
"""
