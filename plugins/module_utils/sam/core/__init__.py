# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pure core: stdlib only, no I/O, no imports from outside ``core/``.

Documents in, data out: loading, validation, the join payload and HMAC, admission, the RR-side claim
registry, lease decisions, materialization and rendering (``render/``).  Everything here is a function of
its arguments (the clock is passed in), so the modules, the RR daemon, the leaf side and the CLI all run
the same rules.  tests/unit/test_layout.py keeps it so.
"""
