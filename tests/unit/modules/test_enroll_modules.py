"""sam_enroll and sam_claim run in-process against the fake RR: check mode, idempotency, no_log, state file."""

import copy
import json
import os
import stat

import pytest
from conftest import base_mesh, find
from enroll_fake import ADMIN_TOKEN, API_TOKEN, JOIN_TOKEN, FakeRR
from inprocess import collection_on_path, run_module

_COLLECTION_BASE = collection_on_path()
SECRETS = (API_TOKEN, ADMIN_TOKEN, JOIN_TOKEN.decode())


@pytest.fixture
def rr():
    server = FakeRR()
    yield server
    server.stop()


def claim():
    return copy.deepcopy(find(base_mesh(), "SAMEnrollmentClaim", "leaf-b"))


def enroll(rr_urls, state_file, check=False, **extra):
    args = {"claim": claim(), "rr_urls": rr_urls, "state_file": str(state_file), "api_token": API_TOKEN,
            "secret": JOIN_TOKEN.decode(), "timeout": 2}
    args.update(extra)
    args = {key: value for key, value in args.items() if value is not None}
    result, raw = run_module("sam_enroll", args, check=check, diff=True)
    for secret in SECRETS:
        assert secret not in raw
    return result


def test_enroll_check_mode_then_join_then_idempotent(rr, tmp_path):
    state_file = tmp_path / "enrollment.json"
    result = enroll([rr.url], state_file, check=True)
    assert result["changed"] and result["decision"] == "state-missing" and not result.get("failed")
    assert rr.requests == [] and not state_file.exists()
    result = enroll([rr.url], state_file)
    assert result["changed"] and result["endpoint"] == rr.url and result["expires_at"] == rr.expires_at
    assert result["rrset"] == rr.rrset and result["state_file"] == str(state_file)
    assert result["diff"]["before"] == {} and result["diff"]["after"]["members"] == ["rr-a", "rr-b"]
    assert stat.S_IMODE(os.stat(state_file).st_mode) == 0o600
    seen = len(rr.requests)
    again = enroll([rr.url], state_file)
    assert not again["changed"] and again["decision"] == "fresh" and again["rrset"] == rr.rrset
    assert len(rr.requests) == seen
    check = enroll([rr.url], state_file, check=True)
    assert not check["changed"] and check["decision"] == "fresh"


def test_enroll_from_resources_over_a_socket_with_token_files(tmp_path):
    rr = FakeRR(unix=True)
    (tmp_path / "api").write_text(API_TOKEN + "\n")
    (tmp_path / "join").write_bytes(JOIN_TOKEN)
    try:
        result, raw = run_module("sam_enroll", {
            "resources": base_mesh(), "claim_name": "SAMEnrollmentClaim/leaf-b", "rr_sockets": [rr.socket_path],
            "state_file": str(tmp_path / "s.json"), "api_token_file": str(tmp_path / "api"),
            "secret_file": str(tmp_path / "join")})
    finally:
        rr.stop()
    assert result["changed"] and result["endpoint"] == "unix:" + rr.socket_path
    assert API_TOKEN not in raw and JOIN_TOKEN.decode() not in raw


def test_enroll_failure_records_the_backoff_and_names_rule_and_rr(tmp_path):
    refusing = FakeRR(mode="reject")
    state_file = tmp_path / "enrollment.json"
    try:
        result = enroll([refusing.url], state_file)
    finally:
        refusing.stop()
    assert result["failed"] and result["rule"] == "join-hmac"
    assert "failed from %s: join-hmac: " % refusing.url in result["msg"]
    assert {f["path"] for f in result["findings"]} == {"spec.joinHMAC", "spec.endpoint"}
    state = json.loads(state_file.read_text())
    assert state["failures"] == 1 and state["nextAttemptAt"] == result["next_attempt_at"]
    assert stat.S_IMODE(os.stat(state_file).st_mode) == 0o600
    again = enroll([refusing.url], state_file)
    assert not again.get("failed") and not again["changed"] and again["decision"] == "backoff"


def test_enroll_input_errors(rr, tmp_path):
    result = enroll([rr.url], tmp_path / "s.json", claim=claim()["spec"])
    assert result["failed"] and "claim_name [required]" in result["msg"]
    result = enroll(["ftp://rr-a"], tmp_path / "s.json")
    assert result["failed"] and "scheme must be" in result["msg"]
    result = enroll([rr.url], tmp_path / "s.json", api_token="has space")
    assert result["failed"] and "not allowed in an HTTP header" in result["msg"]
    assert rr.requests == []


def test_enroll_with_rotation_secrets_uses_the_token_that_signed_the_claim(rr, tmp_path):
    # The next token first, as during a rotation: the claim is still signed with the current one.
    result = enroll([rr.url], tmp_path / "s.json", secret=None, secrets=["next-token-unused", JOIN_TOKEN.decode()])
    assert result["changed"] and not result.get("failed") and result["rrset"] == rr.rrset
    seen = len(rr.requests)
    result, raw = run_module("sam_enroll", {
        "claim": claim(), "rr_urls": [rr.url], "state_file": str(tmp_path / "t.json"), "api_token": API_TOKEN,
        "secrets": ["next-token-unused", "an-old-one"], "timeout": 2})
    assert result["failed"] and "claim.spec.joinHMAC [join-hmac] matches none of the 2 join token(s)" in result["msg"]
    assert "next-token-unused" not in raw and "an-old-one" not in raw and API_TOKEN not in raw
    assert len(rr.requests) == seen   # nothing was sent


def admin(rr, check=False, **args):
    base = {"api_url": rr.url, "name": "leaf-b"}
    if "admin_token_file" not in args:
        base["admin_token"] = ADMIN_TOKEN
    base.update(args)
    result, raw = run_module("sam_claim", base, check=check, diff=True)
    for secret in SECRETS:
        assert secret not in raw
    return result


def test_claim_revoke_is_idempotent_with_check_mode(rr):
    rr.accept("leaf-b", claim()["spec"])
    result = admin(rr, check=True, state="revoked", reason="lost")
    assert result["changed"] and result["diff"]["after"]["revoked"] and not rr.claims["leaf-b"]["revoked"]
    result = admin(rr, state="revoked", reason="lost")
    assert result["changed"] and rr.claims["leaf-b"]["revoked"] and result["claim"]["revokedReason"] == "lost"
    result = admin(rr, state="revoked", reason="lost")
    assert not result["changed"] and result["diff"]["before"] == result["diff"]["after"]
    result = admin(rr, expires_at="2026-11-23T18:00:00Z")
    assert result["failed"] and "[claim-revoked]" in result["msg"]


def test_claim_expiry_only_shortens(rr, tmp_path):
    rr.accept("leaf-b", claim()["spec"])
    (tmp_path / "admin").write_text(ADMIN_TOKEN)
    file_args = {"admin_token_file": str(tmp_path / "admin")}
    earlier = "2026-11-23T18:00:00+00:00"
    result = admin(rr, check=True, expires_at=earlier, **file_args)
    assert result["changed"] and rr.claims["leaf-b"]["expiresAt"] == rr.expires_at
    result = admin(rr, expires_at=earlier, **file_args)
    assert result["changed"] and rr.claims["leaf-b"]["expiresAt"] == "2026-11-23T18:00:00Z"
    assert result["diff"]["after"]["expiresAt"] == "2026-11-23T18:00:00Z"
    assert not admin(rr, expires_at="2026-11-23T18:00:00Z")["changed"]
    assert not admin(rr)["changed"]
    result = admin(rr, expires_at="2030-01-01T00:00:00Z")
    assert result["failed"] and "[expiry-extend]" in result["msg"]
    result = admin(rr, name="leaf-zz", state="revoked")
    assert result["failed"] and "[unknown-claim]" in result["msg"]


def test_claim_with_a_leaf_token_fails_cleanly(rr):
    result = admin(rr, admin_token=API_TOKEN, state="revoked")
    assert result["failed"] and result["msg"].startswith("forbidden: admin token required (HTTP 403 from ")
