"""netbird_enroll in-process against a fake `netbird` on PATH that records argv and env (tests/fixtures/netbird)."""

from pathlib import Path

import pytest
from inprocess import collection_on_path, run_module

_COLLECTION_BASE = collection_on_path()
KEY = "NBSETUPKEY-5f0c1d2e-test-only-9a8b"
URL = "https://netbird.askari.example"


def enroll(check=False, **extra):
    args = {"management_url": URL, "setup_key": KEY}
    args.update(extra)
    result, raw = run_module("netbird_enroll", args, check=check, diff=True)
    assert KEY not in raw, "the setup key leaked into the module result"
    return result


def subcommands(calls):
    return [c["argv"][0] for c in calls]


def assert_key_never_in_argv(calls):
    for call in calls:
        assert not any(KEY in arg for arg in call["argv"]), call["argv"]


def test_not_connected_runs_up_with_key_only_in_env(netbird_agent):
    netbird_agent.set(daemon="NeedsLogin", connected=False, url=None)
    result = enroll()
    assert result["changed"] and result["enrolled"]
    assert result["reason"] == "not-connected" and result["actions"] == ["up"]
    calls = netbird_agent.calls()
    assert subcommands(calls) == ["status", "up"]
    assert calls[1]["argv"] == ["up", "--management-url", URL]
    assert calls[1]["env_setup_key"] == KEY
    assert calls[0]["env_setup_key"] is None, "status must not see the key"
    assert_key_never_in_argv(calls)
    assert netbird_agent.state()["connected"]


def test_connected_to_same_url_is_unchanged(netbird_agent):
    netbird_agent.set(daemon="Connected", connected=True, url=URL + ":443")
    result = enroll()
    assert not result["changed"] and not result["enrolled"]
    assert result["reason"] == "connected" and result["commands"] == []
    assert subcommands(netbird_agent.calls()) == ["status"]


def test_second_run_after_enrolment_is_unchanged(netbird_agent):
    netbird_agent.set(daemon="NeedsLogin", connected=False, url=None)
    assert enroll()["changed"]
    assert not enroll()["changed"]
    assert subcommands(netbird_agent.calls()) == ["status", "up", "status"]


def test_management_url_drift_runs_down_then_up(netbird_agent):
    netbird_agent.set(daemon="Connected", connected=True, url="https://old-coordinator.example:443")
    result = enroll()
    assert result["changed"] and result["reason"] == "management-url-drift"
    calls = netbird_agent.calls()
    assert subcommands(calls) == ["status", "down", "up"]
    assert calls[2]["argv"] == ["up", "--management-url", URL] and calls[2]["env_setup_key"] == KEY
    assert calls[1]["env_setup_key"] is None
    assert_key_never_in_argv(calls)
    assert netbird_agent.state()["url"] == URL + ":443"
    assert result["diff"]["before"]["management_url"] == "https://old-coordinator.example:443"
    assert result["diff"]["after"]["management_url"] == URL


def test_text_needslogin_status_of_older_agents_is_understood(netbird_agent):
    netbird_agent.set(daemon="NeedsLogin", connected=False, url=None, format="text")
    result = enroll()
    assert result["status"]["format"] == "text" and result["status"]["daemon_status"] == "NeedsLogin"
    assert result["changed"] and subcommands(netbird_agent.calls()) == ["status", "up"]


def test_text_connected_status_is_unchanged(netbird_agent):
    netbird_agent.set(daemon="Connected", connected=True, url=URL + ":443", format="text")
    result = enroll()
    assert not result["changed"] and result["status"]["management_connected"]


def test_check_mode_reads_status_and_runs_nothing_else(netbird_agent):
    netbird_agent.set(daemon="Connected", connected=True, url="https://old-coordinator.example:443")
    result = enroll(check=True)
    assert result["changed"] and not result["enrolled"]
    assert result["actions"] == ["down", "up"]
    assert subcommands(netbird_agent.calls()) == ["status"]
    assert netbird_agent.state()["url"] == "https://old-coordinator.example:443"


def test_setup_key_file_is_0600_and_removed(netbird_agent, tmp_path):
    netbird_agent.set(daemon="NeedsLogin", connected=False, url=None)
    result = enroll(setup_key_via="file")
    assert result["changed"] and result["key_transport"] == "file:--setup-key-file"
    up = netbird_agent.calls()[1]
    assert up["env_setup_key"] is None
    assert up["key_file_mode"] == "0o600" and up["key_file_content"] == KEY
    assert not Path(up["argv"][up["argv"].index("--setup-key-file") + 1]).exists()
    assert_key_never_in_argv(netbird_agent.calls())


def test_failed_up_reports_without_the_key(netbird_agent):
    netbird_agent.set(daemon="NeedsLogin", connected=False, url=None)
    result = enroll(setup_key="")
    assert result["failed"] and "setup_key [required]" in result["msg"]
    assert subcommands(netbird_agent.calls()) == ["status"]


def test_agent_echoing_the_key_is_scrubbed(netbird_agent, tmp_path):
    # A hostile/buggy agent prints its environment on failure: the key must still not come back.
    script = tmp_path / "bin" / "netbird"
    script.write_text('#!/bin/sh\nif [ "$1" = status ]; then echo "Daemon status: NeedsLogin"; exit 0; fi\n'
                      'echo "bad key $NB_SETUP_KEY" >&2; exit 1\n')
    result = enroll()
    assert result["failed"] and "********" in result["msg"]


def test_plan_without_agent_lists_commands_and_runs_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    result = enroll(plan=True)
    assert not result["changed"] and result["status"]["format"] == "absent"
    assert result["commands"] == [["netbird", "up", "--management-url", URL]]


@pytest.mark.parametrize(("status", "actions"), [
    ('{"daemonStatus": "Connected", "management": {"url": "HTTPS://netbird.askari.example:443/", "connected": true}}',
     []),
    ('{"daemonStatus": "Connected", "management": {"url": "https://other.example:443", "connected": true}}',
     ["down", "up"]),
    ('{"daemonStatus": "Idle", "management": {"url": "https://netbird.askari.example:443", "connected": false}}',
     ["up"]),
    ("Daemon status: NeedsLogin\n\nRun UP command to log in with SSO (interactive login):\n", ["up"]),
])
def test_plan_guard_from_given_status(tmp_path, monkeypatch, status, actions):
    monkeypatch.setenv("PATH", str(tmp_path))
    result = enroll(plan=True, status_output=status)
    assert result["actions"] == actions and not result["changed"]


def test_status_output_requires_plan():
    result = enroll(status_output="{}")
    assert result["failed"] and "plan-only" in result["msg"]


def test_unreadable_status_fails_clearly(netbird_agent, tmp_path):
    (tmp_path / "bin" / "netbird").write_text("#!/bin/sh\necho 'daemon is not running' >&2; exit 1\n")
    result = enroll()
    assert result["failed"] and "no status it could read" in result["msg"]
