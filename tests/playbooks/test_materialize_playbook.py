"""sam_materialize through ansible-playbook on both example inventories (connection local, check mode too)."""

import json
import os
import pathlib
import subprocess
import sys

import pytest
from mesh_views import EXPECTED

REPO = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent


@pytest.fixture(scope="module", autouse=True)
def collection():
    subprocess.run(["make", "-C", str(REPO), "collection"], check=True, capture_output=True)


@pytest.mark.parametrize("inventory", ["cloudedge", "pve-minimal"])
@pytest.mark.parametrize("check", [False, True])
def test_every_host_materializes_through_the_module(inventory, check, tmp_path):
    expected = {host: counts for (inv, host), counts in EXPECTED.items() if inv == inventory}
    extra = tmp_path / "expected.json"
    extra.write_text(json.dumps({"expected": expected}))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(REPO / ".build"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_PYTHON_INTERPRETER=sys.executable)
    argv = [str(BIN / "ansible-playbook"), "-i", str(REPO / "inventories" / inventory), "-e", "@" + str(extra),
            str(REPO / "tests/playbooks/playbooks/materialize.yml")] + (["--check"] if check else [])
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:]
    recaps = [line for line in proc.stdout.splitlines() if " : ok=" in line]
    assert len(recaps) == len(expected) and all("changed=0" in r and "failed=0" in r for r in recaps)
