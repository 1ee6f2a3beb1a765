"""netbird_info in-process: the fake agent (tests/fixtures/netbird) on PATH, and one-line agents for the fail paths."""

import importlib

import pytest
from inprocess import collection_on_path, run_module

_COLLECTION_BASE = collection_on_path()


def script(tmp_path, body):
    """A stand-in `netbird` that runs a shell body (the fail paths the fake has no state for)."""
    path = tmp_path / "netbird-stub"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return str(path)


def info(check=False, **args):
    result, _raw = run_module("netbird_info", args, check=check)
    return result


def test_connected_agent_is_ready_and_nothing_changes(netbird_agent):
    netbird_agent.set(daemon="Connected", connected=True, url="https://netbird.example:443")
    result = info(required_peers=["askari", "ubongo.netbird.selfhosted"])
    assert result["changed"] is False and result["ready"] is True and result["problems"] == []
    assert result["management"]["connected"] and result["signal"]["connected"]
    assert result["ip"] == "100.64.0.7/16" and result["address"] == "100.64.0.7"
    assert result["fqdn"].endswith(".netbird.selfhosted") and result["version"] == "0.59.0"
    assert (result["peers_total"], result["peers_connected"]) == (3, 2)
    assert [c["argv"] for c in netbird_agent.calls()] == [["status", "--json"]], "only the status is read"


def test_check_mode_reads_the_same(netbird_agent):
    netbird_agent.set(daemon="Connected", connected=True, url="https://netbird.example:443")
    result = info(check=True)
    assert result["changed"] is False and result["ready"] is True


def test_required_peer_idle_or_unknown_is_named(netbird_agent):
    netbird_agent.set(daemon="Connected", connected=True, url="https://netbird.example:443")
    result = info(required_peers=["askari", "mamba", "ghost"])
    assert result["ready"] is False
    assert result["problems"] == ["peers not connected: mamba (Idle), ghost (not a peer)"]
    assert result["missing_peers"] == ["mamba", "ghost"]


def test_disconnected_agent_is_reported_not_failed(netbird_agent):
    netbird_agent.set(daemon="Idle", connected=False, url="https://netbird.example:443")
    result = info()
    assert not result.get("failed") and result["ready"] is False
    assert result["problems"] == ["daemon status Idle", "management not connected", "signal not connected",
                                  "no mesh IP"]


def test_login_text_is_reported_not_failed(netbird_agent):
    netbird_agent.set(daemon="NeedsLogin", connected=False, url=None, format="text")
    result = info()
    assert result["format"] == "text" and result["ready"] is False
    assert result["problems"][0] == "daemon status NeedsLogin"


def test_missing_netbird_fails_with_a_message(tmp_path):
    result = info(executable=str(tmp_path / "no-such-netbird"))
    assert result["failed"] and result["changed"] is False
    assert result["msg"].startswith("NetBird is not installed:") and "Traceback" not in result["msg"]


def test_daemon_not_running_fails_with_a_message(tmp_path):
    # client/cmd/status.go getStatus() words, rc 1
    exe = script(tmp_path, "echo 'Error: failed to connect to daemon error: context deadline exceeded' >&2\n"
                           "echo 'If the daemon is not running please run: ' >&2\nexit 1")
    result = info(executable=exe)
    assert result["failed"]
    assert result["msg"].startswith("the NetBird daemon is not running (`netbird status --json` rc=1: Error: failed")
    assert "systemctl start netbird" in result["msg"]


def test_other_command_failure_quotes_it(tmp_path):
    result = info(executable=script(tmp_path, "echo 'status failed: permission denied' >&2; exit 3"))
    assert result["failed"]
    assert result["msg"] == "`netbird status --json` failed (rc=3): status failed: permission denied"


@pytest.mark.parametrize("body, shown", [("true", "(empty output)"), ("echo 'Management: Connected'", "Management")])
def test_no_json_fails_with_a_message(tmp_path, body, shown):
    result = info(executable=script(tmp_path, body))
    assert result["failed"] and result["msg"].startswith("`netbird status --json` printed no JSON status")
    assert shown in result["msg"]


def test_unexpected_error_is_a_message_not_a_traceback(tmp_path, monkeypatch):
    # imported here: the collection is on sys.path only once collection_on_path() ran
    netbird_info = importlib.import_module("ansible_collections.boma.mesh.plugins.modules.netbird_info")

    def boom(_text):
        raise KeyError("x")

    monkeypatch.setattr(netbird_info, "parse", boom)
    result = info(executable=script(tmp_path, "echo '{}'"))
    assert result["failed"] and result["msg"] == "internal error in netbird_info (KeyError); please report it"
