"""rr/reconcile: a run whose desired state is unchanged (a renewal) touches neither FRR nor the kernel, except once
per --repair-interval; a changed state or a replaced WireGuard key file applies at once; a failed run retries."""

import os
import threading
import time

import pytest

from boma_mesh_utils.sam.cli import main as cli
from boma_mesh_utils.sam.rr import reconcile


@pytest.fixture
def rig(monkeypatch, tmp_path):
    key = tmp_path / "wg.key"
    key.write_text("k1\n")
    args = cli.build_parser().parse_args(["serve", "--config", "x.yml", "--node", "rr-a", "--db", "x.db",
                                          "--token-file", "t", "--reconcile", "all", "--wg-key-file", str(key),
                                          "--repair-interval", "300"])
    box = {"state": {"resources": [{"kind": "BGPRouter", "spec": {"exportPrefixes": []}}]}, "bgp": 0, "data": 0,
           "clock": 1000.0, "fail": False}
    monkeypatch.setattr(reconcile, "desired_state", lambda service, node, rr_peering, steps=None: box["state"])

    def bgp(state, vty, confdir, options, memory=None, full=False):
        # apply/node.apply_bgp's contract with its FrrMemory: the whole path when asked or with no last candidate
        box["bgp"] += 1
        path = "full" if full or memory.candidate is None else "delta"
        box.setdefault("paths", []).append(path)
        if box["fail"]:
            memory.forget()
            raise RuntimeError("frr-reload failed")
        memory.candidate = repr(state)
        memory.full_runs += path == "full"
        return "bgp unchanged"

    def data(state, wireguard, memory=None, full=False):
        # apply/dataplane.apply_dataplane's contract with its DataplaneMemory, as for FRR above
        box["data"] += 1
        box.setdefault("data_paths", []).append("full" if full or memory.last is None else "delta")
        memory.last = repr(state)
        return ["tunnels unchanged"]
    monkeypatch.setattr(reconcile, "apply_bgp", bgp)
    monkeypatch.setattr(reconcile, "apply_dataplane", data)
    monkeypatch.setattr(reconcile.netlink, "HAS_PYROUTE2", True)
    monkeypatch.setattr(reconcile.time, "monotonic", lambda: box["clock"])
    return reconcile.factory(object(), args), box, key


def test_an_unchanged_desired_state_applies_nothing_until_the_repair_interval(rig):
    apply, box, _key = rig
    assert apply() == "bgp unchanged, tunnels unchanged"
    for _renewal in range(5):
        box["clock"] += 10
        assert apply() == "unchanged (same desired state)"
    assert (box["bgp"], box["data"]) == (1, 1)
    box["clock"] += 300
    apply()
    assert (box["bgp"], box["data"]) == (2, 2)


def test_a_changed_state_or_a_replaced_key_file_applies_at_once(rig):
    apply, box, key = rig
    apply()
    box["state"] = {"resources": [{"kind": "BGPRouter", "spec": {"exportPrefixes": ["10.0.0.1/32"]}}]}
    apply()
    assert box["bgp"] == 2
    replacement = key.with_name("wg.key.new")
    replacement.write_text("k2-rotated\n")
    os.replace(replacement, key)
    apply()
    assert box["bgp"] == 3
    assert apply() == "unchanged (same desired state)"


def test_a_failed_run_is_not_remembered(rig):
    apply, box, _key = rig
    box["fail"] = True
    with pytest.raises(reconcile.ReconcileError):
        apply()
    box["fail"] = False
    apply()
    assert box["bgp"] == 2


def test_repair_interval_must_be_positive(tmp_path, capsys):
    assert cli.main(["serve", "--config", str(tmp_path / "x.yml"), "--node", "rr-a", "--db", str(tmp_path / "db"),
                     "--token-file", str(tmp_path / "t"), "--socket", str(tmp_path / "s"), "--reconcile", "bgp",
                     "--repair-interval", "0"]) == 2
    assert "--repair-interval must be above 0" in capsys.readouterr().err


def test_changes_are_deltas_and_the_whole_path_runs_at_start_after_a_failure_and_each_repair_interval(rig):
    apply, box, _key = rig
    apply()
    for n in range(3):
        box["clock"] += 10
        box["state"] = {"resources": [{"kind": "BGPRouter", "spec": {"exportPrefixes": ["10.0.0.%d/32" % n]}}]}
        apply()
    assert box["paths"] == ["full", "delta", "delta", "delta"]
    assert box["data_paths"] == ["full", "delta", "delta", "delta"]      # the data plane follows the same rule
    box["fail"] = True
    box["state"] = {"resources": []}
    with pytest.raises(reconcile.ReconcileError):
        apply()
    box["fail"] = False
    apply()
    assert box["paths"][-2:] == ["delta", "full"]          # the failed delta forgot its candidate
    box["clock"] += 290
    box["state"] = {"resources": [{"kind": "BGPRouter"}]}
    apply()
    box["clock"] += 20                                      # 310 s after the last full run
    box["state"] = {"resources": [{"kind": "BGPRouter", "spec": {}}]}
    apply()
    assert box["paths"][-2:] == ["delta", "full"] and box["data_paths"][-2:] == ["delta", "full"]


def test_a_run_that_changed_nothing_does_not_hold_the_next_change_for_the_interval():
    """Issue 19: a revocation right after a renewal's no-op run waited the whole --reconcile-interval."""
    runs, third = [], threading.Event()

    def apply():
        runs.append(time.monotonic())
        apply.applied = len(runs) != 2          # run 2 is a renewal's: the desired state was unchanged
        apply.steps = {"state": 0.001}
        if len(runs) == 3:
            third.set()
        return "ok"

    reconciler = reconcile.Reconciler(apply, interval=1.0)
    reconciler.start()
    try:
        time.sleep(0.1)
        reconciler.trigger()                     # run 2 waits for the interval after run 1, which applied
        while len(runs) < 2:
            time.sleep(0.01)
        reconciler.trigger()                     # run 3 follows the no-op run 2 at once
        assert third.wait(2.0)
    finally:
        reconciler.stop()
    assert runs[1] - runs[0] >= 0.9 and runs[2] - runs[1] < 0.5, runs
    assert reconcile._steps(apply) == " [state 0.001]"
