# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Full Topology Gate review of an inventory (pure): review, gate checks, Markdown.

Reads only what it is given (the CLI and the sam_preflight module load the inventory); imports only ``core``.
"""
