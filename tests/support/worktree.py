"""A collections path whose boma.mesh is this working tree (a symlink), and an ansible-playbook environment on it:
the playbook tests that must not depend on .build, which other lanes rebuild while they run."""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def worktree_env(base, **extra):
    """Environment for ansible-playbook with ``base``/ansible_collections/boma/mesh -> the working tree; no
    ANSIBLE_* of the caller's environment leaks in; ``extra`` adds or overrides variables."""
    link = Path(base) / "ansible_collections" / "boma" / "mesh"
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.is_symlink():
        link.symlink_to(ROOT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update({"ANSIBLE_COLLECTIONS_PATH": str(base), "ANSIBLE_HOME": str(Path(base) / "home"),
                "ANSIBLE_NOCOLOR": "1", **extra})
    return env
