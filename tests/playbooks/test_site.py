# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/site.yml parses with both example inventories and `--tags mesh` reaches every role concern."""

import subprocess
import sys
from pathlib import Path

import pytest

from support.worktree import worktree_env

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CONCERNS = ["sam_rr : Preflight", "sam_rr : BGP daemon", "sam_rr : Enrollment service", "sam_rr : Desired state",
            "sam_leaf : Preflight", "sam_leaf : BGP daemon", "sam_leaf : Enrollment and desired state",
            "sam_leaf : Data plane", "sam_leaf : BGP toward the RRs"]

pytestmark = pytest.mark.skipif(not (ROOT / "roles" / "base").is_dir(), reason="roles/base is not in this tree yet")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return worktree_env(tmp_path_factory.mktemp("site"))


@pytest.mark.parametrize("inventory", ["cloudedge", "pve-minimal"])
def test_site_lists_every_mesh_concern(env, inventory):
    base = [str(BIN / "ansible-playbook"), "-i", str(ROOT / "inventories" / inventory),
            str(ROOT / "playbooks" / "site.yml")]
    syntax = subprocess.run([*base, "--syntax-check"], env=env, capture_output=True, text=True, timeout=120,
                            check=False)
    assert syntax.returncode == 0, syntax.stdout + syntax.stderr
    listing = subprocess.run([*base, "--list-tasks", "--tags", "mesh"], env=env, capture_output=True, text=True,
                             timeout=120, check=False)
    assert listing.returncode == 0, listing.stdout + listing.stderr
    for concern in CONCERNS:
        assert concern in listing.stdout, concern
