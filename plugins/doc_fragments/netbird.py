# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Attributes of modules that drive the NetBird agent CLI."""


class ModuleDocFragment:  # pylint: disable=too-few-public-methods
    DOCUMENTATION = r"""
attributes:
  check_mode:
    support: full
    details: Check mode reads C(netbird status --json) (read-only) and reports what would run; it never runs
      C(netbird up) or C(netbird down).
  diff_mode:
    support: full
    details: The diff shows the management URL and connection state before and after.
  platform:
    platforms: posix
"""
