"""One ansible-playbook run of a boma.mesh module looped over nodes, as a user runs it (the netns tests' driver)."""

import os
import pathlib
import subprocess
import sys

import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent


def run_playbook(workdir, module, task_args, nodes, check=False, expect_rc=0):
    """Run ``module`` with ``task_args`` (Jinja over ``item``) for every node of ``nodes``: the recap as a dict
    (``changed``, ``failed``, ...), or ansible-playbook's stdout when ``expect_rc`` is not 0."""
    (workdir / "nodes.yml").write_text(yaml.safe_dump({"nodes": nodes}))
    (workdir / "apply.yml").write_text(yaml.safe_dump([{
        "name": "Apply to every namespace", "hosts": "localhost", "connection": "local", "gather_facts": False,
        "vars_files": [str(workdir / "nodes.yml")],
        "tasks": [{"name": "Apply", module: task_args,
                   "loop": "{{ nodes }}", "loop_control": {"label": "{{ item.node }}"}}]}]))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(REPO / ".build"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCALHOST_WARNING="False", ANSIBLE_PYTHON_INTERPRETER=sys.executable)
    argv = [str(BIN / "ansible-playbook"), "-i", "localhost,", str(workdir / "apply.yml")]
    argv += ["--check"] if check else []
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == expect_rc, proc.stdout[-3000:] + proc.stderr[-2000:]
    if expect_rc:
        return proc.stdout
    recap = next(line for line in proc.stdout.splitlines() if line.startswith("localhost"))
    return dict(part.split("=") for part in recap.split()[2:])
