# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The leaf daemon behind ``samctl agent``: signs and renews the leaf's claim, keeps its RRSet and mesh state.

Never imported by a module or a filter (tests/unit/test_layout.py), so AnsiballZ never ships it to a managed
host; it may import ``apply``, ``io`` and ``core``.  The decisions are core/agent.py's.
"""
