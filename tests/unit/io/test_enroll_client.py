"""Leaf enrollment client against a fake RR (TCP and unix socket): submit, topology, MAC, failover, backoff."""

import copy
import datetime
import json
import os
import socket
import stat

import pytest
from conftest import base_mesh, find
from enroll_fake import ADMIN_TOKEN, API_TOKEN, JOIN_TOKEN

from boma_mesh_utils.sam.core import lease, payload, wire
from boma_mesh_utils.sam.core.fields import parse_time
from boma_mesh_utils.sam.io import admin_client, enroll_client
from boma_mesh_utils.sam.io.enroll_client import ApiError, TransportError, join, parse_endpoint
from boma_mesh_utils.sam.io.http_client import Response

NOW = datetime.datetime(2026, 11, 23, 12, 0, tzinfo=datetime.timezone.utc)
SECRETS = (API_TOKEN, ADMIN_TOKEN, JOIN_TOKEN.decode())


@pytest.fixture
def spec():
    return copy.deepcopy(find(base_mesh(), "SAMEnrollmentClaim", "leaf-b")["spec"])


def dead_url():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return "http://127.0.0.1:%d" % sock.getsockname()[1]


def run(endpoints, spec, state=None, now=NOW, **kw):
    return join(endpoints, "leaf-b", spec, API_TOKEN, JOIN_TOKEN, state, now, 0.5, timeout=2, **kw)


def assert_no_secret(text):
    for secret in SECRETS:
        assert secret not in text


def test_endpoint_forms():
    assert str(parse_endpoint("https://rr-a:8443/")) == "https://rr-a:8443"
    assert str(parse_endpoint("http://[::1]:8080/base")) == "http://[::1]:8080/base"
    assert parse_endpoint("unix:/run/boma/sam.sock").socket_path == "/run/boma/sam.sock"
    assert parse_endpoint("/run/boma/sam.sock").scheme == "unix"
    with pytest.raises(ValueError) as err:
        parse_endpoint("https://user:hunter2@rr-a:8443")
    assert "hunter2" not in str(err.value)
    for bad in ("ftp://rr-a", "https://rr-a:99999", "rr-a:8443", "unix:"):
        with pytest.raises(ValueError):
            parse_endpoint(bad)


def test_submit_and_topology_write_a_private_state_without_tokens(rrs, spec, tmp_path):
    rr = rrs()
    result = run([rr.url], spec)
    assert result.ok and result.changed and result.attempted and result.reason == "state-missing"
    assert result.endpoint == rr.url
    assert [(m, s) for m, _p, s in rr.requests] == [("POST", 200), ("GET", 200)]
    assert set(rr.authorizations) == {"Bearer " + API_TOKEN}
    state = result.state
    assert state["claimDigest"] == lease.claim_digest(spec) and state["rrSet"] == rr.rrset
    assert state["expiresAt"] == rr.expires_at and state["failures"] == 0
    path = str(tmp_path / "leaf-b.json")
    enroll_client.write_state(path, state)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert_no_secret(open(path).read())
    assert enroll_client.read_state(path) == (state, None)
    assert os.listdir(tmp_path) == ["leaf-b.json"], "no temp file left behind"
    summary = enroll_client.public_state(state)
    assert summary["members"] == ["rr-a", "rr-b"] and summary["rrSet"] == "cloudedge-rrs"


def test_unix_socket_endpoint(rrs, spec):
    rr = rrs(unix=True)
    result = run([rr.url], spec)
    assert result.ok and result.endpoint == rr.url and len(rr.requests) == 2


def test_nonce_replay_fetches_the_topology(rrs, spec):
    rr = rrs()
    rr.accept("leaf-b", spec)
    result = run([rr.url], spec)
    assert result.ok and [s for _m, _p, s in rr.requests] == [409, 200]
    assert result.state["rrSet"] == rr.rrset


@pytest.mark.parametrize("mode", ["no-mac", "bad-mac"])
def test_impostor_is_refused_and_the_next_rr_used(rrs, spec, mode):
    impostor, real = rrs(mode=mode), rrs(unix=True)
    result = run([impostor.url, real.url], spec)
    assert result.ok and result.endpoint == real.url
    assert result.skipped == ["response MAC missing or invalid from %s (submit)" % impostor.url]
    alone = run([impostor.url], spec)
    assert not alone.ok and alone.rule == "response-mac" and alone.state["failures"] == 1


def test_rr_with_another_join_token_is_an_impostor(rrs, spec):
    rr = rrs(join_token=b"another-token")
    rr.accept("leaf-b", spec)   # past the HMAC check: only the response MAC gives it away
    result = run([rr.url], spec)
    assert not result.ok and result.rule == "response-mac"


def test_server_error_and_foreign_answer_fail_over(rrs, spec):
    broken, foreign, real = rrs(mode="error500"), rrs(mode="foreign404"), rrs()
    result = run([broken.url, foreign.url, real.url], spec)
    assert result.ok and result.endpoint == real.url and len(result.skipped) == 2
    assert result.skipped[0].startswith("internal: boom (HTTP 500 from ")


def test_all_rrs_down_backs_off_and_keeps_the_old_rrset(spec, tmp_path):
    urls = [dead_url(), "unix:" + str(tmp_path / "missing.sock")]
    fresh = lease.after_success(spec, {"metadata": {"name": "cloudedge-rrs"}}, NOW + datetime.timedelta(minutes=5),
                                NOW - datetime.timedelta(hours=23))
    result = run(urls, spec, state=fresh)
    assert not result.ok and result.rule == "unreachable" and result.reason == "near-expiry"
    assert result.state["failures"] == 1 and result.state["rrSet"] == fresh["rrSet"]
    assert parse_time(result.state["nextAttemptAt"]) > NOW
    assert "connection refused" in result.error and "no such file" in result.error
    later = run(urls, spec, state=result.state, now=NOW + datetime.timedelta(seconds=1))
    assert later.ok and not later.attempted and later.reason == "backoff" and later.state is result.state
    after = run(urls, spec, state=result.state, now=NOW + datetime.timedelta(minutes=1))
    assert after.attempted and after.state["failures"] == 2


def test_fresh_state_makes_no_request(rrs, spec):
    rr = rrs()
    state = run([rr.url], spec).state
    rr.requests.clear()
    again = run([rr.url], spec, state=state)
    assert again.ok and not again.changed and not again.attempted and again.reason == "fresh"
    assert rr.requests == []
    forced = run([rr.url], spec, state=state, force=True)
    assert forced.attempted and forced.reason == "forced" and not forced.changed, "same lease, same RRSet"


def test_changed_claim_refreshes_inside_the_backoff(rrs, spec):
    rr = rrs()
    joined = run([rr.url], spec).state
    state = run([dead_url()], spec, state=joined, force=True).state
    assert state["failures"] == 1 and not run([rr.url], spec, state=state).attempted
    changed = dict(spec, joinNonce="leaf-b-0002")
    changed["joinHMAC"] = payload.join_hmac(JOIN_TOKEN, changed)
    result = run([rr.url], changed, state=state)
    assert result.ok and result.reason == "claim-changed" and result.state["failures"] == 0
    assert "attemptedDigest" not in result.state


def test_a_leaf_that_never_joined_backs_off_too(rrs, spec):
    rr = rrs(mode="error500")
    first = run([rr.url], spec)
    assert not first.ok and first.rule == "server-error" and "claimDigest" not in first.state
    second = run([rr.url], spec, state=first.state, now=NOW + datetime.timedelta(seconds=1))
    assert second.reason == "backoff" and not second.attempted and len(rr.requests) == 1
    changed = dict(spec, joinNonce="leaf-b-0002")
    assert run([rr.url], changed, state=first.state, now=NOW + datetime.timedelta(seconds=1)).attempted


def test_changed_claim_with_an_old_nonce_is_reported(rrs, spec):
    rr = rrs()
    rr.accept("leaf-b", spec)
    changed = dict(spec, endpoint="10.20.0.33")
    result = run([rr.url], changed)
    assert not result.ok and result.rule == "claim-digest" and "new joinNonce" in result.error
    assert run([rr.url], changed, state=result.state).reason == "backoff", "no retry on every run"


def test_validation_refusal_is_definitive(rrs, spec):
    refusing, other = rrs(mode="reject"), rrs()
    result = run([refusing.url, other.url], spec)
    assert not result.ok and result.rule == "join-hmac" and result.endpoint == refusing.url
    assert "[spec.endpoint, spec.joinHMAC]" in result.error and "HTTP 422" in result.error
    assert {f["path"] for f in result.findings} == {"spec.joinHMAC", "spec.endpoint"}
    assert other.requests == [], "a verdict is not shopped around"
    assert result.state["failures"] == 1 and result.state["lastError"].startswith("join-hmac: ")


def test_revoked_claim_is_definitive(rrs, spec):
    rr = rrs()
    rr.accept("leaf-b", spec)
    admin_client.revoke(rr.url, ADMIN_TOKEN, "leaf-b", "stolen")
    result = run([rr.url], spec)
    assert not result.ok and result.rule == "claim-revoked"


def test_wrong_api_token_is_definitive_and_not_quoted(rrs, spec):
    rr = rrs()
    result = join([rr.url], "leaf-b", spec, "wrong-token-value", JOIN_TOKEN, None, NOW, 0.1)
    assert result.rule == "unauthorized" and "wrong-token-value" not in json.dumps(result.state)


def test_timeout_is_a_transport_error(spec):
    with socket.socket() as listener:   # accepts (backlog) but never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        url = "http://127.0.0.1:%d" % listener.getsockname()[1]
        result = join([url], "leaf-b", spec, API_TOKEN, JOIN_TOKEN, None, NOW, 0.1, timeout=0.3)
    assert result.rule == "unreachable" and "timed out after 0.3s" in result.error


def test_tokens_never_in_errors(rrs, spec):
    with pytest.raises(ValueError) as err:
        enroll_client.request("http://127.0.0.1:1", "GET", "/", token="bad token\r\nX: y")
    assert "bad token" not in str(err.value)
    with pytest.raises(TransportError) as err:
        enroll_client.request(dead_url(), "GET", "/", token=API_TOKEN)
    assert_no_secret(str(err.value))
    rr = rrs()
    with pytest.raises(ApiError) as err:
        admin_client.list_claims(rr.url, API_TOKEN)
    assert err.value.status == 403 and err.value.rule == "forbidden"
    assert_no_secret(str(err.value))


def test_admin_calls(rrs, spec):
    rr = rrs(unix=True)
    rr.accept("leaf-b", spec)
    items = admin_client.list_claims(rr.url, ADMIN_TOKEN)["items"]
    assert [(i["name"], i["revoked"]) for i in items] == [("leaf-b", False)]
    assert admin_client.set_expiry(rr.url, ADMIN_TOKEN, "leaf-b", "2026-11-23T18:00:00Z")["expiresAt"] \
        == "2026-11-23T18:00:00Z"
    with pytest.raises(ApiError) as err:
        admin_client.set_expiry(rr.url, ADMIN_TOKEN, "leaf-b", "2027-01-01T00:00:00Z")
    assert err.value.rule == "expiry-extend" and err.value.status == 422
    assert admin_client.revoke(rr.url, ADMIN_TOKEN, "leaf-b", "decommissioned")["revoked"] is True
    assert admin_client.audit(rr.url, ADMIN_TOKEN, limit=1)["items"][0]["event"] == "revoked"
    with pytest.raises(ValueError):
        admin_client.revoke(rr.url, ADMIN_TOKEN, "../health")


def test_read_state_tolerates_damage(tmp_path):
    path = tmp_path / "state.json"
    assert enroll_client.read_state(str(path)) == (None, None)
    path.write_text("{not json")
    state, note = enroll_client.read_state(str(path))
    assert state is None and "not valid JSON" in note
    path.write_text("[]")
    assert "not a JSON object" in enroll_client.read_state(str(path))[1]


# --- issue 17 class 4: the response MAC is bound to the request ------------------------------------------------

OTHER_NONCE = "5" * 32
MAC = wire.RESPONSE_MAC_HEADER.lower()


def capture(rr, method, path, body=None, nonce=OTHER_NONCE):
    """A real signed answer of ``rr`` to someone else's request (another nonce; None: a 0.1.x leaf's, legacy MAC)."""
    headers = {wire.REQUEST_NONCE_HEADER: nonce} if nonce else None
    resp = enroll_client.request(rr.url, method, path, API_TOKEN, body, timeout=2, headers=headers)
    assert MAC in resp.headers
    return resp


def test_every_request_carries_a_fresh_nonce(rrs, spec):
    rr = rrs()
    assert run([rr.url], spec).ok
    run([rr.url], spec, force=True)
    assert len(rr.request_nonces) == 4 and len(set(rr.request_nonces)) == 4
    assert all(wire.is_request_nonce(n) and len(n) == 32 for n in rr.request_nonces)


def test_an_rr_that_sends_only_the_legacy_mac_is_refused(rrs, spec):
    """A 0.1.x RR (body-only MAC) cannot serve a new leaf: upgrade the RRs first (docs/api.md)."""
    old, new = rrs(mode="legacy-mac"), rrs()
    result = run([old.url, new.url], spec)
    assert result.ok and result.endpoint == new.url
    assert result.skipped == ["response MAC missing or invalid from %s (submit)" % old.url]
    assert run([old.url], spec, force=True).rule == "response-mac"


@pytest.mark.parametrize("nonce", [OTHER_NONCE, None], ids=["v2-other-request", "legacy"])
def test_a_replayed_signed_revocation_does_not_stop_the_leaf(rrs, spec, nonce):
    """An impostor replays a real 410 claim-revoked (of an earlier revocation): not definitive, the next RR serves."""
    source = rrs()
    source.accept("leaf-b", spec)
    replay = capture(source, "POST", wire.submit_path(), wire.submit_request("leaf-b", spec), nonce)
    admin_client.revoke(source.url, ADMIN_TOKEN, "leaf-b", "stolen")
    revoked = capture(source, "GET", wire.topology_path("cloudedge-rrs", "leaf-b"), nonce=nonce)
    assert (replay.status, revoked.status) == (409, 410)
    impostor, real = rrs(), rrs()
    impostor.canned = {"POST": replay, "GET": revoked}
    result = run([impostor.url, real.url], spec)
    assert result.ok and result.endpoint == real.url, result
    assert len(result.skipped) == 1 and result.skipped[0].startswith("claim-revoked: ")
    alone = run([impostor.url], spec)
    assert not alone.ok and alone.endpoint is None and alone.rule == "claim-revoked" and alone.attempted


@pytest.mark.parametrize("nonce", [OTHER_NONCE, None], ids=["v2-other-request", "legacy"])
def test_a_replayed_claim_name_refusal_does_not_stop_the_leaf(rrs, spec, nonce):
    """A 409 MACed (by a real RR, with the join token) for the same claim and target but another request."""
    body = json.dumps(wire.error_body(409, "claim-name-taken", "SAMEnrollmentClaim/leaf-b metadata.name: taken"),
                      sort_keys=True).encode()
    if nonce:
        mac = wire.response_mac_v2(JOIN_TOKEN, 409, "POST", wire.submit_path(), nonce, lease.claim_digest(spec), body)
    else:
        mac = wire.response_mac(JOIN_TOKEN, body)
    impostor, real = rrs(), rrs()
    impostor.canned = {"POST": Response(409, {MAC: mac}, body)}
    result = run([impostor.url, real.url], spec)
    assert result.ok and result.endpoint == real.url and result.skipped[0].startswith("claim-name-taken: ")


@pytest.mark.parametrize("nonce", [OTHER_NONCE, None], ids=["v2-other-request", "legacy"])
def test_an_old_topology_replayed_after_a_revocation_is_refused(rrs, spec, nonce):
    """The impostor keeps a recorded topology; the real RR has revoked the claim since: the leaf learns that."""
    real = rrs()
    real.accept("leaf-b", spec)
    replay = capture(real, "POST", wire.submit_path(), wire.submit_request("leaf-b", spec), nonce)
    old = capture(real, "GET", wire.topology_path("cloudedge-rrs", "leaf-b"), nonce=nonce)
    assert old.status == 200 and json.loads(old.body)["claimDigest"] == lease.claim_digest(spec)
    admin_client.revoke(real.url, ADMIN_TOKEN, "leaf-b", "stolen")
    impostor = rrs()
    impostor.canned = {"POST": replay, "GET": old}
    result = run([impostor.url, real.url], spec)
    assert not result.ok and result.rule == "claim-revoked" and result.endpoint == real.url
    assert result.skipped == ["response MAC missing or invalid from %s (topology)" % impostor.url]
    assert result.state.get("rrSet") is None, "the recorded RRSet was not taken"


def test_a_signed_refusal_about_another_version_of_the_claim_is_not_definitive(rrs, spec):
    """The MAC binds the claim digest: a revocation of the RR's older version says nothing about this one."""
    rr = rrs()
    rr.accept("leaf-b", spec)
    admin_client.revoke(rr.url, ADMIN_TOKEN, "leaf-b", "old version")
    changed = dict(spec, endpoint="10.20.0.33")   # same nonce: 409 nonce-replay, then the RR's (other) version
    result = run([rr.url], changed)
    assert not result.ok and result.endpoint is None and result.rule == "claim-revoked"
    assert result.skipped[0].startswith("claim-revoked: ")
    assert not run([rr.url], spec, force=True).ok and run([rr.url], spec, force=True).endpoint == rr.url
