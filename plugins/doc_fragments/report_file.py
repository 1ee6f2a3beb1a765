# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Attributes of modules that compute a report on the controller and may write it to one file."""


class ModuleDocFragment:  # pylint: disable=too-few-public-methods
    DOCUMENTATION = r"""
attributes:
  check_mode:
    support: full
    details: Check mode computes the report and tells whether O(dest) would change; it writes nothing.
  diff_mode:
    support: full
    details: The diff is the old and the new report text of O(dest).
  platform:
    platforms: posix
"""
