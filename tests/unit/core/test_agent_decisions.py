"""core/agent.py: the leaf agent's decisions, with no I/O (issue 18)."""

import datetime

import pytest

from boma_mesh_utils.sam.core import agent, lease
from boma_mesh_utils.sam.core.fields import format_time

T0 = datetime.datetime(2026, 7, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)
S = datetime.timedelta(seconds=1)
INTENT = "sha256:intent-a"
RRSET = {"metadata": {"name": "rrs"}, "spec": {"members": [{"nodeRef": "rr-a"}, {"nodeRef": "rr-b"}]}}


def held(ttl=60 * S, refreshed=T0, **extra):
    state = {"claimName": "leaf-0", "intentDigest": INTENT, "signedClaim": {"joinNonce": "a" * 32},
             "claimDigest": "sha256:c", "rrSet": RRSET, "leaseStartedAt": format_time(T0),
             "expiresAt": format_time(T0 + ttl), "lastRefreshAt": format_time(refreshed), "failures": 0}
    state.update(extra)
    return state


@pytest.mark.parametrize("ttl, window", [
    (60 * S, 30 * S),                                    # short: half (never in the first half of the lease)
    (20 * S, 10 * S),
    (datetime.timedelta(minutes=24), datetime.timedelta(minutes=10)),   # REFRESH_WINDOW before the end
    (datetime.timedelta(minutes=30), datetime.timedelta(minutes=10)),   # the two rules meet
    (datetime.timedelta(hours=24), datetime.timedelta(hours=8)),        # long: one third
    (datetime.timedelta(0), datetime.timedelta(0)),
])
def test_renewal_window(ttl, window):
    assert agent.renewal_window(ttl) == window


def test_renewal_window_boundaries_for_a_60s_lease():
    state = held()
    assert agent.next_action(state, INTENT, T0 + 29 * S, 60 * S) == agent.Action(agent.WAIT, "fresh", T0 + 30 * S)
    assert agent.next_action(state, INTENT, T0 + 30 * S - S / 1000, 3600 * S).kind == agent.WAIT
    assert agent.next_action(state, INTENT, T0 + 30 * S, 3600 * S) == agent.Action(agent.SIGN, "renewal-window")
    assert agent.next_action(state, INTENT, T0 + 60 * S, 3600 * S) == agent.Action(agent.SIGN, "expired")


def test_a_fresh_lease_waits_until_the_next_refresh_or_the_renewal_window():
    state = held(ttl=datetime.timedelta(hours=24))
    action = agent.next_action(state, INTENT, T0 + 10 * S, 60 * S)
    assert action == agent.Action(agent.WAIT, "fresh", T0 + 60 * S)
    assert agent.next_action(state, INTENT, T0 + 60 * S, 60 * S) == agent.Action(agent.REFRESH, "interval")
    near = held(ttl=90 * S)
    assert agent.next_action(near, INTENT, T0 + 10 * S, 60 * S).wake_at == T0 + 45 * S


def test_no_lease_and_a_changed_intent_sign_at_once():
    assert agent.next_action(None, INTENT, T0) == agent.Action(agent.SIGN, "no-lease")
    assert agent.next_action(held(), "sha256:other", T0 + S) == agent.Action(agent.SIGN, "intent-changed")
    assert agent.next_action(held(resign="claim-expired"), INTENT, T0 + S) == agent.Action(agent.SIGN, "claim-expired")


def test_a_lease_without_expiry_only_refreshes():
    state = held(expiresAt=None)
    assert agent.next_action(state, INTENT, T0 + 5 * S, 60 * S).kind == agent.WAIT
    assert agent.next_action(state, INTENT, T0 + 61 * S, 60 * S).kind == agent.REFRESH


def test_backoff_holds_the_same_intent_but_not_a_changed_one():
    failed = agent.after_failure(held(), INTENT, T0 + S, 0.0, "unreachable: x", cap=4 * S)
    assert failed["failures"] == 1 and failed["rrSet"] == RRSET and failed["lastError"] == "unreachable: x"
    wait = agent.next_action(failed, INTENT, T0 + 2 * S, 60 * S)
    assert wait.kind == agent.WAIT and wait.reason == "backoff" and wait.wake_at == T0 + 5 * S
    # After the backoff the failed refresh is retried at once (not a whole interval later).
    assert agent.next_action(failed, INTENT, T0 + 5 * S, 60 * S) == agent.Action(agent.REFRESH, "retry")
    assert agent.next_action(failed, "sha256:other", T0 + 2 * S).kind == agent.SIGN


@pytest.mark.parametrize("failures", [1, 2, 5, 30])
@pytest.mark.parametrize("jitter", [0.0, 0.5, 0.999])
def test_backoff_is_jittered_and_capped(failures, jitter):
    delay = agent.backoff(failures, jitter)
    assert delay == lease.backoff_delay(failures, jitter)
    assert agent.backoff(failures, jitter, cap=4 * S) == 4 * S
    assert agent.backoff(failures, jitter) <= lease.BACKOFF_MAX


def test_revoked_waits_until_the_intent_changes():
    revoked = agent.after_revoked(held(), INTENT, T0 + S, "revoked by admin", "sha256:empty")
    assert revoked["revoked"]["intentDigest"] == INTENT and revoked["appliedDigest"] == "sha256:empty"
    far = T0 + datetime.timedelta(days=3)   # long after the lease: still no renewal
    assert agent.next_action(revoked, INTENT, far) == agent.Action(agent.REVOKED, "revoked", None)
    assert agent.next_action(revoked, "sha256:new", far) == agent.Action(agent.SIGN, "intent-changed")
    assert agent.status(revoked, far)["revoked"]["reason"] == "revoked by admin"


def test_enrolled_and_refreshed_states():
    signed = {"joinNonce": "b" * 32, "joinTimestamp": format_time(T0), "joinHMAC": "00"}
    doc = {"rrSet": RRSET, "expiresAt": format_time(T0 + 60 * S), "generation": 3}
    state = agent.after_enrolled({"nonces": ["a" * 32]}, "leaf-0", INTENT, signed, doc, T0, "unix:/x", ["unix:/y"])
    assert state["generation"] == 3 and state["intentDigest"] == INTENT and state["nonces"] == ["a" * 32, "b" * 32]
    assert state["claimDigest"] == lease.claim_digest(signed) and state["failures"] == 0
    assert agent.status(state, T0)["rrUnreachable"] == ["unix:/y"]
    new, changed = agent.after_refreshed(state, dict(doc, rrSet={"spec": {"members": []}}), T0 + S, "unix:/x")
    assert changed and agent.status(new, T0)["members"] == []
    assert agent.after_refreshed(state, doc, T0 + S, "unix:/x")[1] is False


def test_renewal_first_asks_whether_the_claim_was_revoked():
    assert agent.is_renewal(held(), INTENT, "renewal-window")
    assert agent.is_renewal(held(), INTENT, "expired")
    assert not agent.is_renewal(held(), "sha256:other", "intent-changed")
    assert not agent.is_renewal(None, INTENT, "no-lease")


def test_status_metrics_and_digest():
    state = held(lastSuccessAt=format_time(T0), failures=2)
    status = agent.status(state, T0 + 10 * S)
    assert status["leaseSecondsLeft"] == 50 and status["failures"] == 2 and status["members"] == ["rr-a", "rr-b"]
    text = agent.metrics(state, T0 + 10 * S)
    assert 'boma_sam_agent_lease_seconds_left{claim="leaf-0"} 50' in text
    assert 'boma_sam_agent_last_success_timestamp_seconds{claim="leaf-0"} %d' % int(T0.timestamp()) in text
    assert 'boma_sam_agent_failures{claim="leaf-0"} 2' in text
    assert agent.state_digest({"b": 1, "a": 2}) == agent.state_digest({"a": 2, "b": 1})
    assert agent.empty_state("leaf-0")["resources"] == []
    router = {"kind": "BGPRouter", "metadata": {"name": "r"}, "spec": {"asn": 1, "exportPrefixes": ["x"]}}
    desired = {"resources": [router, {"kind": "BGPPeer", "metadata": {"name": "rr-a"}, "spec": {}}]}
    assert agent.empty_state("leaf-0", desired)["resources"] == [
        {"kind": "BGPRouter", "metadata": {"name": "r"}, "spec": {"asn": 1, "exportPrefixes": []}}]
