"""What the module tests share: the fake NetBird agent (tests/fixtures/netbird/netbird) on PATH."""

import json
import os
import shutil
from pathlib import Path

import pytest

FAKE = Path(__file__).resolve().parents[2] / "fixtures" / "netbird" / "netbird"


@pytest.fixture
def agent(tmp_path, monkeypatch):
    """A fake agent: bin/netbird on PATH; set(**state) writes its state file, calls() reads its call log (one
    {argv, env} per call), state() reads the state it kept. NB_SETUP_KEY is unset: a test sets it if it wants it."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    shutil.copy(FAKE, bindir / "netbird")
    monkeypatch.setenv("PATH", "%s:%s" % (bindir, os.environ["PATH"]))
    monkeypatch.setenv("NETBIRD_FAKE_STATE", str(tmp_path / "state.json"))
    monkeypatch.setenv("NETBIRD_FAKE_LOG", str(tmp_path / "calls.jsonl"))
    monkeypatch.delenv("NB_SETUP_KEY", raising=False)

    class Agent:
        @staticmethod
        def set(**state):
            (tmp_path / "state.json").write_text(json.dumps(state))

        @staticmethod
        def calls():
            log = tmp_path / "calls.jsonl"
            return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

        @staticmethod
        def state():
            return json.loads((tmp_path / "state.json").read_text())

    return Agent
