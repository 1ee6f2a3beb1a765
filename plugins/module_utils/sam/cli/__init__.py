# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""``samctl``: one file per subcommand, ``main.py`` builds the parser.  The top of the import graph."""
