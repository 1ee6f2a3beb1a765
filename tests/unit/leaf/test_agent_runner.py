"""leaf/agent.py: the runner over a fake transport and a fake applier (no RR, no FRR)."""

import datetime
import os
import stat

import pytest

from boma_mesh_utils.sam.core import payload, signing
from boma_mesh_utils.sam.core.fields import format_time, parse_time
from boma_mesh_utils.sam.io.enroll_client import Exchange
from boma_mesh_utils.sam.leaf import agent as leaf

KEY = b"unit-join-token-0123456789"
T0 = datetime.datetime(2026, 7, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)
RRSET = {"kind": "SAMRRSet", "metadata": {"name": "rrs"}, "spec": {"members": [{"nodeRef": "rr-a"}]}}


def intent(**extra):
    spec = {"policyRef": "SAMEnrollmentPolicy/bench", "rrSetRef": "SAMRRSet/rrs", "leafID": "leaf-0",
            "joinAudience": "bench", "tunnelAddress": "10.128.0.1/32", "endpoint": "10.192.0.1"}
    spec.update(extra)
    return {"kind": "SAMEnrollmentClaim", "metadata": {"name": "leaf-0"}, "spec": spec}


class FakeRR:
    def __init__(self):
        self.calls, self.mode, self.generation = [], "ok", 0

    def _answer(self, spec):
        if self.mode == "down":
            return Exchange(False, rule="unreachable", error="no RR gave a usable answer", unreachable=["unix:/a"])
        if self.mode == "revoked":
            return Exchange(False, endpoint="unix:/a", rule="claim-revoked", error="revoked", definitive=True)
        expires = parse_time(spec["joinTimestamp"]) + datetime.timedelta(seconds=60)
        return Exchange(True, {"rrSet": RRSET, "generation": self.generation, "expiresAt": format_time(expires)},
                        "unix:/a")

    def submit_and_fetch(self, endpoints, name, spec, token, key, timeout=None, ca_file=None):
        self.calls.append(("submit", spec))
        self.generation += 1
        return self._answer(spec)

    def fetch_topology(self, endpoints, name, spec, token, key, timeout=None, ca_file=None):
        self.calls.append(("topology", spec))
        return self._answer(spec)


@pytest.fixture
def run(tmp_path):
    clock = {"now": T0}
    rr, applied, docs = FakeRR(), [], {"claim": intent()}

    def make(apply="none", **settings):
        s = leaf.Settings(node="leaf-0", endpoints=["unix:/a"], api_token="api-token-unit", state_dir=str(tmp_path),
                          apply=apply, refresh_interval=10, backoff_max=4, **settings)
        a = leaf.Agent(s, lambda: ([("mem", {"resources": [docs["claim"]]})], KEY), clock=lambda: clock["now"],
                       jitter=lambda: 0.0, transport=rr, applier=lambda state: applied.append(state) or "ok")
        return a
    return make, rr, clock, applied, docs, tmp_path


def test_signs_an_intent_then_refreshes_then_renews_with_a_new_nonce(run):
    make, rr, clock, _applied, _docs, tmp = run
    agent = make()
    agent.step()
    kind, spec = rr.calls[-1]
    assert kind == "submit" and signing.NONCE_RE.match(spec["joinNonce"]) and payload.verify_join_hmac(KEY, spec)
    path = tmp / "agent.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and "unit-join-token" not in path.read_text()
    assert "api-token-unit" not in path.read_text()
    clock["now"] = T0 + datetime.timedelta(seconds=10)
    agent.step()
    assert rr.calls[-1][0] == "topology" and len(rr.calls) == 2
    clock["now"] = T0 + datetime.timedelta(seconds=31)     # renewal window of a 60 s lease
    agent.step()
    assert [c[0] for c in rr.calls[2:]] == ["topology", "submit"]   # asks about revocation first
    assert rr.calls[-1][1]["joinNonce"] != spec["joinNonce"]


def test_an_outage_keeps_the_state_and_backs_off(run):
    make, rr, clock, _applied, _docs, _tmp = run
    agent = make()
    agent.step()
    rr.mode = "down"
    clock["now"] = T0 + datetime.timedelta(seconds=10)
    agent.step()
    assert agent.state["failures"] == 1 and agent.state["rrSet"] == RRSET
    calls = len(rr.calls)
    clock["now"] = T0 + datetime.timedelta(seconds=11)    # inside the backoff (4 s cap)
    agent.step()
    assert len(rr.calls) == calls
    rr.mode = "ok"
    clock["now"] = T0 + datetime.timedelta(seconds=15)
    agent.step()
    assert agent.state["failures"] == 0


def test_revoked_tears_down_once_and_waits_for_a_new_intent(run, monkeypatch):
    make, rr, clock, applied, docs, _tmp = run
    monkeypatch.setattr(leaf, "desired_state", lambda *a: {"node": "leaf-0", "role": "leaf", "resources": [1]})
    agent = make(apply="bgp")
    agent.step()
    assert applied == [{"node": "leaf-0", "role": "leaf", "resources": [1]}]
    clock["now"] = T0 + datetime.timedelta(seconds=10)
    agent.step()
    assert len(applied) == 1              # same digest: not applied again
    rr.mode = "revoked"
    clock["now"] = T0 + datetime.timedelta(seconds=20)
    agent.step()
    assert applied[-1]["resources"] == [] and agent.state["revoked"]
    calls = len(rr.calls)
    for seconds in (30, 100, 1000):
        clock["now"] = T0 + datetime.timedelta(seconds=seconds)
        agent.step()
    assert len(rr.calls) == calls and len(applied) == 2
    rr.mode = "ok"
    docs["claim"] = intent(endpoint="10.192.0.9")
    agent.reload()
    agent.step()
    assert rr.calls[-1][0] == "submit" and agent.state["revoked"] is None


def test_a_failed_teardown_is_retried_each_interval_until_it_succeeds(run, monkeypatch):
    """Seen in the guest lab: FRR refused the teardown state; the leaf then kept its tunnels and neighbours."""
    make, rr, clock, _applied, _docs, _tmp = run
    monkeypatch.setattr(leaf, "desired_state", lambda *a: {"node": "leaf-0", "role": "leaf", "resources": [1]})
    agent = make(apply="all")
    tries = []

    def applier(state):
        tries.append(state)
        if state["resources"] == [] and len(tries) < 3:
            raise RuntimeError("candidate rejected, nothing applied")
        return "ok"

    agent.applier = applier
    agent.step()
    rr.mode = "revoked"
    clock["now"] = T0 + datetime.timedelta(seconds=10)
    action = agent.step()
    assert len(tries) == 2 and agent.state["teardownPending"] and "candidate rejected" in agent.state["applyError"]
    assert action.kind == leaf.decide.REVOKED and agent.sleep_for(action) == pytest.approx(10)
    calls = len(rr.calls)
    clock["now"] = T0 + datetime.timedelta(seconds=20)
    action = agent.step()
    assert len(tries) == 3 and tries[-1]["resources"] == [] and not agent.state["teardownPending"]
    assert agent.state["applyError"] is None and action.wake_at is None
    clock["now"] = T0 + datetime.timedelta(seconds=40)
    agent.step()
    assert len(tries) == 3 and len(rr.calls) == calls     # done: no RR call, no apply while revoked


def test_a_wireguard_claim_gets_a_generated_key(run):
    make, rr, _clock, _applied, docs, tmp = run
    docs["claim"] = intent(wireGuard={"endpoint": "10.192.0.1:51820"})
    agent = make()
    agent.step()
    key = tmp / "wg.key"
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    public = rr.calls[-1][1]["wireGuard"]["publicKey"]
    assert len(public) == 44 and key.read_text().strip() not in (tmp / "agent.json").read_text()


def test_a_fully_signed_claim_is_submitted_as_written_first(run):
    make, rr, _clock, _applied, docs, _tmp = run
    written = signing.sign_claim(intent()["spec"], KEY, "c" * 32, T0)
    docs["claim"] = dict(intent(), spec=written)
    make().step()
    assert rr.calls[-1] == ("submit", written)


def test_no_claim_for_the_node_is_an_input_error(run):
    make, _rr, _clock, _applied, docs, _tmp = run
    docs["claim"] = dict(intent(), spec=dict(intent()["spec"], leafID="leaf-9"), metadata={"name": "other"})
    with pytest.raises(leaf.AgentInputError):
        make()


def test_a_second_agent_on_the_same_state_dir_starts_from_what_the_first_wrote(run):
    # The play's `samctl agent --once` and the running agent share STATE_DIR: each pass re-reads the state under
    # the lock, so neither signs over the other's lease (one lease, one nonce), and a fresh lease is only refreshed.
    make, rr, clock, _applied, _docs, _tmp = run
    daemon, once = make(), make()
    daemon.step()
    assert [c[0] for c in rr.calls] == ["submit"]
    clock["now"] = T0 + datetime.timedelta(seconds=5)
    once.step(once=True)
    assert [c[0] for c in rr.calls] == ["submit", "topology"]
    assert once.state["generation"] == daemon.state["generation"] == 1
    assert not leaf.decide.pass_changed(once.last_pass_before, once.state)


def test_check_previews_without_sending_anything(run):
    make, rr, clock, _applied, _docs, _tmp = run
    agent = make()
    assert agent.preview().kind == leaf.decide.SIGN and rr.calls == []
    agent.step()
    clock["now"] = T0 + datetime.timedelta(seconds=5)
    assert agent.preview().kind == leaf.decide.REFRESH and len(rr.calls) == 1


def test_a_pass_changed_only_with_a_new_lease_rrset_apply_or_revocation():
    state = {"generation": 1, "claimDigest": "sha256:a", "rrSet": RRSET, "appliedDigest": "d", "lastRefreshAt": "x"}
    assert not leaf.decide.pass_changed(state, dict(state, lastRefreshAt="y", lastSuccessAt="z"))
    assert leaf.decide.pass_changed(state, dict(state, generation=2))
    assert leaf.decide.pass_changed(state, dict(state, rrSet=dict(RRSET, spec={"members": []})))
    assert leaf.decide.pass_changed(state, dict(state, appliedDigest="e"))
    assert leaf.decide.pass_changed(state, dict(state, revoked={"at": "now"}))
    assert leaf.decide.pass_changed({}, state)


def test_an_unchanged_state_is_applied_again_only_after_the_repair_interval(run, monkeypatch):
    make, _rr, clock, applied, _docs, _tmp = run
    monkeypatch.setattr(leaf, "desired_state", lambda *a: {"node": "leaf-0", "role": "leaf", "resources": [1]})
    agent = make(apply="bgp", repair_interval=100)
    agent.step()
    for seconds in (10, 20, 40, 80):          # refreshes and a renewal: the same desired state
        clock["now"] = T0 + datetime.timedelta(seconds=seconds)
        agent.step()
    assert len(applied) == 1
    clock["now"] = T0 + datetime.timedelta(seconds=101)
    agent.step()
    assert len(applied) == 2                  # the periodic repair puts back what a hand edit changed


def test_a_pass_longer_than_the_refresh_interval_is_followed_at_once_not_after_max_sleep(run):
    """The lab (issue 18): a renewal plus an FRR apply took longer than the 5 s refresh interval, step() returned
    REFRESH (no wake_at) and run() slept MAX_SLEEP (1 h), so the lease ran out. Due work runs at once."""
    make, _rr, clock, _applied, _docs, _tmp = run
    agent = make()
    agent.step()
    clock["now"] = T0 + datetime.timedelta(seconds=25)      # the pass ended after the refresh interval (10 s)
    action = leaf.decide.next_action(agent.state, agent.intent, clock["now"], agent.interval)
    assert action.kind == leaf.decide.REFRESH and action.wake_at is None
    assert agent.sleep_for(action) <= 0.05
    sign = leaf.decide.Action(leaf.decide.SIGN, "claim-expired")
    assert agent.sleep_for(sign) <= 0.05
    wait = leaf.decide.Action(leaf.decide.WAIT, "fresh", clock["now"] + datetime.timedelta(seconds=7))
    assert agent.sleep_for(wait) == 7
    revoked = leaf.decide.Action(leaf.decide.REVOKED, "revoked", None)
    assert agent.sleep_for(revoked) == leaf.decide.MAX_SLEEP.total_seconds()


def test_a_gobgp_leaf_applies_through_gobgpd_with_the_agents_options(tmp_path, monkeypatch):
    """--bgp-daemon gobgp: the state goes to apply/gobgp.apply_state (FRR is never called) with a Gobgpd built
    from the agent's gobgp options and its connect timer."""
    seen = []
    monkeypatch.setattr(leaf, "apply_state", lambda gobgpd, state, options: seen.append((gobgpd, state, options))
                        or "gobgp unchanged (0 leaves)")
    monkeypatch.setattr(leaf, "apply_bgp", lambda *a, **k: pytest.fail("FRR applied on a gobgp leaf"))
    s = leaf.Settings(node="leaf-0", endpoints=["unix:/a"], api_token="t", state_dir=str(tmp_path), apply="bgp",
                      bgp_daemon="gobgp", bgp_connect_timer=5,
                      gobgp={"config_path": "/srv/g.conf", "api_target": "unix:///run/g.sock",
                             "pid_file": "/run/g.pid"})
    agent = leaf.Agent(s, lambda: ([("mem", {"resources": [intent()]})], KEY), transport=FakeRR())
    assert agent._apply({"node": "leaf-0", "role": "leaf", "resources": []}) == "gobgp unchanged (0 leaves)"
    gobgpd, _state, options = seen[0]
    assert (gobgpd.config_path, gobgpd.pid_file, options) == ("/srv/g.conf", "/run/g.pid", {"connect_retry": 5})
    assert gobgpd.cli()[1:] == ["--target", "unix:///run/g.sock"]
