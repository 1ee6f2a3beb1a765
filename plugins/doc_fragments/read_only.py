# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Attributes of modules that only compute and never change the host."""


class ModuleDocFragment:  # pylint: disable=too-few-public-methods
    DOCUMENTATION = r"""
attributes:
  check_mode:
    support: full
    details: The module never changes anything, so check mode runs it unchanged.
  diff_mode:
    support: none
    details: The module never changes anything, so there is nothing to diff.
  platform:
    platforms: posix
"""
