"""Leaf client decisions (refresh, backoff) and the response MAC, issue 6 groundwork."""

import datetime

from conftest import base_mesh, find

from boma_mesh_utils.sam.core import lease, wire
from boma_mesh_utils.sam.core.fields import parse_time

NOW = datetime.datetime(2026, 6, 28, 1, 0, tzinfo=datetime.timezone.utc)


def _claim():
    return find(base_mesh(), "SAMEnrollmentClaim", "leaf-b")["spec"]


def _fresh_state(claim, expires=NOW + datetime.timedelta(hours=20)):
    return lease.after_success(claim, {"members": []}, expires, NOW)


def test_missing_state_refreshes():
    assert lease.refresh_decision(None, _claim(), NOW) == lease.Decision(True, "state-missing")


def test_fresh_state_does_not_refresh():
    claim = _claim()
    assert lease.refresh_decision(_fresh_state(claim), claim, NOW) == lease.Decision(False, "fresh")


def test_refresh_window_before_expiry():
    claim = _claim()
    state = _fresh_state(claim, expires=NOW + datetime.timedelta(minutes=10))
    assert lease.refresh_decision(state, claim, NOW).reason == "near-expiry"
    state = _fresh_state(claim, expires=NOW + datetime.timedelta(minutes=10, seconds=1))
    assert not lease.refresh_decision(state, claim, NOW).refresh
    assert lease.refresh_decision(state, claim, NOW + datetime.timedelta(hours=1)).reason == "expired"


def test_changed_claim_refreshes_even_while_backing_off():
    claim = _claim()
    state = lease.after_failure(_fresh_state(claim), NOW, 0.5, "connection refused")
    changed = dict(claim, endpoint="10.20.0.33")
    assert lease.refresh_decision(state, changed, NOW).reason == "claim-changed"
    assert lease.refresh_decision(state, claim, NOW).reason == "backoff"


def test_admin_fields_do_not_count_as_a_claim_change():
    claim = _claim()
    state = _fresh_state(claim)
    assert not lease.refresh_decision(state, dict(claim, expiresAt="2026-06-28T02:00:00Z", revoked=False), NOW).refresh


def test_backoff_schedule_doubles_from_10s_to_15min_with_jitter():
    lows = [lease.backoff_delay(n, 0.0).total_seconds() for n in range(1, 12)]
    highs = [lease.backoff_delay(n, 0.999999).total_seconds() for n in range(1, 12)]
    assert lows[:4] == [10, 10, 20, 40] and round(highs[0]) == 10 and round(highs[3]) == 80
    assert max(highs) <= 900 and round(highs[-1]) == 900 and lows[-1] == 450
    assert all(low <= high for low, high in zip(lows, highs))


def test_failures_are_recorded_and_success_resets_them():
    claim = _claim()
    state = lease.after_failure(None, NOW, 0.0, "timeout")
    state = lease.after_failure(state, NOW, 0.0, "timeout")
    assert state["failures"] == 2 and parse_time(state["nextAttemptAt"]) == NOW + datetime.timedelta(seconds=10)
    assert lease.refresh_decision(state, claim, NOW + datetime.timedelta(seconds=11)).refresh
    done = lease.after_success(claim, {"members": []}, NOW + datetime.timedelta(hours=24), NOW)
    assert done["failures"] == 0 and done["lastError"] is None


def test_response_mac_refuses_an_impostor_and_a_tampered_body():
    body = b'{"accepted": true}'
    mac = wire.response_mac(b"join-token", body)
    assert wire.verify_response_mac(b"join-token", body, mac)
    assert not wire.verify_response_mac(b"other-token", body, mac), "an RR without the token"
    assert not wire.verify_response_mac(b"join-token", body + b" ", mac)
    assert not wire.verify_response_mac(b"join-token", body, None)


def test_submit_request_has_routerds_shape():
    req = wire.submit_request("leaf-b", _claim())
    assert req["kind"] == "SAMEnrollmentClaimSubmitRequest" and req["claim"]["metadata"]["name"] == "leaf-b"
    assert wire.submit_path() == "/api/control.routerd.net/v1alpha1/sam-enrollment-claims"
