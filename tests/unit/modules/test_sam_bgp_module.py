"""sam_bgp in-process with a stand-in for vtysh / frr-reload.py: the option ``desired`` and its deprecated alias.

The stand-in answers AnsibleModule.run_command like FRR with nothing to change (an empty frr-reload delta), so
the module runs to the end in check mode and renders the same candidate whichever name carried the state.
"""

import pytest
from ansible.module_utils import _internal as module_utils_internal
from ansible.module_utils.basic import AnsibleModule
from inprocess import collection_on_path, run_module
from mesh_views import node_state

_COLLECTION_BASE = collection_on_path()
RUNNING = "frr version 8.4.4\nfrr defaults traditional\nhostname leaf-b\n!\nend\n"
EMPTY_DELTA = "\nLines To Delete\n===============\n\nLines To Add\n============\n"


@pytest.fixture
def frr(monkeypatch):
    """Every command sam_bgp runs, answered as FRR with nothing to change would answer it."""
    calls = []

    def run_command(_module, argv, **_kwargs):
        calls.append(list(argv))
        if "--reload" in argv:
            raise AssertionError("sam_bgp reloaded FRR in check mode or with an empty delta")
        if "--test" in argv:
            return 0, EMPTY_DELTA, ""
        if argv[-1] == "show running-config":
            return 0, RUNNING, ""
        return 0, "", ""                   # vtysh -C -f FILE: the grammar check accepts

    monkeypatch.setattr(AnsibleModule, "run_command", run_command)
    # As on a managed host: once a test in this process has imported controller code, ansible-core would hand
    # a module's warnings to the controller's Display instead of putting them in the result.
    monkeypatch.setattr(module_utils_internal, "is_controller", False, raising=False)
    return calls


def bgp(tmp_path, **args):
    args = dict({"vtysh": "/usr/bin/vtysh", "rundir": str(tmp_path), "confdir": str(tmp_path), "persist": False},
                **args)
    return run_module("sam_bgp", args, check=True)[0]


def _deprecations(result):
    """(message, version, collection) of each deprecation the result carries about ``state``.

    ansible-core 2.19 nests the message in ``event`` and the collection in ``deprecator``; older cores kept
    ``msg`` and ``collection_name`` at the top.
    """
    out = []
    for item in result.get("deprecations", []):
        msg = item.get("msg") or (item.get("event") or {}).get("msg", "")
        collection = item.get("collection_name") or (item.get("deprecator") or {}).get("resolved_name")
        if "state" in msg:
            out.append((msg, item.get("version"), collection))
    return out


def test_desired_renders_the_state_without_a_deprecation(frr, tmp_path):
    result = bgp(tmp_path, desired=node_state("cloudedge", "leaf-b")[0])
    assert not result.get("failed"), result
    assert result["changed"] is False and result["commands"] == {"delete": [], "add": []}
    assert "router bgp 64577" in result["config"]
    assert _deprecations(result) == []
    assert [argv[1] for argv in frr if argv[0].endswith("frr-reload.py")] == ["--test"]


def test_the_state_alias_still_works_and_warns_once(frr, tmp_path):
    state = node_state("cloudedge", "leaf-b")[0]
    new = bgp(tmp_path, desired=state)
    old = bgp(tmp_path, state=state)
    assert not old.get("failed"), old
    assert old["config"] == new["config"] and old["changed"] is False
    ((msg, version, collection),) = _deprecations(old)
    assert "Alias 'state' is deprecated" in msg
    assert (version, collection) == ("2.0.0", "boma.mesh")


def test_desired_and_config_are_mutually_exclusive_and_one_is_required(frr, tmp_path):
    state = node_state("cloudedge", "leaf-b")[0]
    result = bgp(tmp_path, state=state, config="router bgp 64577\n")
    assert result["failed"] is True and "mutually exclusive" in result["msg"] and "desired" in result["msg"]
    result = bgp(tmp_path)
    assert result["failed"] is True and "one of the following is required: desired, config" in result["msg"]
    assert frr == []


def test_a_state_that_cannot_be_rendered_names_the_option(frr, tmp_path):
    result = bgp(tmp_path, desired={"node": "leaf-b"})
    assert result["failed"] is True and result["msg"].startswith("desired cannot be rendered: ")
    assert frr == []
