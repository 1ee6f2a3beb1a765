"""Import the collection from the working tree and run its modules in this process (no subprocess per call).

Python in the kernel-lane guest is ~30x slower, so tests call module ``main()`` directly instead of
``ansible-playbook``.
"""

import contextlib
import importlib
import io
import json
import sys
import tempfile
from pathlib import Path

import pytest
from ansible.module_utils.testing import patch_module_args

ROOT = Path(__file__).resolve().parents[1]


def collection_on_path():
    """Make ansible_collections.boma.mesh import from the working tree (a symlink, nothing copied)."""
    base = Path(tempfile.mkdtemp(prefix="boma-coll-"))
    (base / "ansible_collections" / "boma").mkdir(parents=True)
    (base / "ansible_collections" / "boma" / "mesh").symlink_to(ROOT)
    sys.path.insert(0, str(base))
    return base


def run_module(name, args, check=False, diff=False):
    """Run plugins/modules/<name>.py main() in-process; returns (result dict, raw stdout)."""
    module = importlib.import_module("ansible_collections.boma.mesh.plugins.modules." + name)
    args = dict(args)
    if check:
        args["_ansible_check_mode"] = True
    if diff:
        args["_ansible_diff"] = True
    out = io.StringIO()
    with patch_module_args(args), contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        module.main()
    raw = out.getvalue()
    return json.loads(raw), raw
