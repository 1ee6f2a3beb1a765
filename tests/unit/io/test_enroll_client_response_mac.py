"""response_mac required (default) / optional (the downgrade for an RR without a MAC, as routerd's) / a wrong MAC."""

import copy
import datetime

import pytest
from conftest import base_mesh, find
from enroll_fake import API_TOKEN, JOIN_TOKEN

from boma_mesh_utils.sam.core import lease
from boma_mesh_utils.sam.io import enroll_client

NOW = datetime.datetime(2026, 11, 23, 12, 0, tzinfo=datetime.timezone.utc)


@pytest.fixture
def spec():
    return copy.deepcopy(find(base_mesh(), "SAMEnrollmentClaim", "leaf-b")["spec"])


def run(endpoints, spec, **kw):
    return enroll_client.join(endpoints, "leaf-b", spec, API_TOKEN, JOIN_TOKEN, None, NOW, 0.5, timeout=2, **kw)


def test_required_is_the_default_and_refuses_an_answer_without_a_mac(rrs, spec):
    rr = rrs(mode="no-mac")
    for result in (run([rr.url], spec), run([rr.url], spec, response_mac="required")):
        assert not result.ok and result.rule == "response-mac" and result.mac_verified is None
        assert "rrSet" not in result.state


def test_optional_takes_an_answer_without_a_mac_and_says_so(rrs, spec):
    rr = rrs(mode="no-mac")
    result = run([rr.url], spec, response_mac="optional")
    assert result.ok and result.changed and result.endpoint == rr.url and result.mac_verified is False
    assert result.state["rrSet"] == rr.rrset and result.state["claimDigest"] == lease.claim_digest(spec)
    ex = enroll_client.fetch_topology([rr.url], "leaf-b", spec, API_TOKEN, JOIN_TOKEN, timeout=2,
                                      response_mac="optional")
    assert ex.ok and ex.mac_verified is False


def test_optional_still_prefers_and_reports_a_signed_answer(rrs, spec):
    rr = rrs()
    result = run([rr.url], spec, response_mac="optional")
    assert result.ok and result.mac_verified is True


@pytest.mark.parametrize("response_mac", ["required", "optional"])
def test_a_mac_that_does_not_verify_is_refused_in_both_modes(rrs, spec, response_mac):
    wrong, legacy, good = rrs(mode="bad-mac"), rrs(mode="legacy-mac"), rrs()
    alone = run([wrong.url], spec, response_mac=response_mac)
    assert not alone.ok and alone.rule == "response-mac"
    result = run([wrong.url, legacy.url, good.url], spec, response_mac=response_mac)
    assert result.ok and result.endpoint == good.url and result.mac_verified is True
    assert [s.split(" from ")[0] for s in result.skipped] == ["response MAC missing or invalid"] * 2


def test_an_unsigned_refusal_is_not_definitive_with_optional(rrs, spec):
    refusing, serving = rrs(mode="no-mac"), rrs(mode="no-mac")
    refusing.nonces.add(spec["joinNonce"])   # a 409 nonce-replay without a MAC: the leaf fetches the topology
    refusing.accept("leaf-b", spec)
    refusing.claims["leaf-b"]["revoked"] = True   # then a 410 without a MAC: not the RRs' verdict
    result = run([refusing.url, serving.url], spec, response_mac="optional")
    assert result.ok and result.endpoint == serving.url and result.skipped[0].startswith("claim-revoked: ")


def test_a_routerd_claim_digest_is_taken_only_from_an_answer_without_a_mac(spec):
    """routerd's RR states samenrollment.ClaimDigest (identity digest lines + expiresAt + revoked)."""
    ours, theirs = lease.claim_digest(spec), lease.routerd_claim_digest(spec)
    assert ours != theirs and theirs.startswith("sha256:")
    assert lease.routerd_claim_digest(dict(spec, expiresAt=" ", revoked=False)) == theirs
    assert lease.routerd_claim_digest(dict(spec, revoked=True)) != theirs
    ctx = enroll_client._context("leaf-b", spec, API_TOKEN, JOIN_TOKEN, 2, None, "optional")
    assert ctx["routerd_digest"] == theirs and ctx["digest"] == ours


def test_an_unknown_mode_is_a_local_error_even_when_nothing_is_due(spec):
    with pytest.raises(ValueError, match="response_mac must be one of required, optional"):
        run(["http://127.0.0.1:9"], spec, response_mac="off")
    state = {"claimDigest": lease.claim_digest(spec), "expiresAt": "2026-11-24T12:00:00Z", "rrSet": {}}
    with pytest.raises(ValueError):
        enroll_client.join(["http://127.0.0.1:9"], "leaf-b", spec, API_TOKEN, JOIN_TOKEN, state, NOW, 0.5,
                           response_mac="Optional")
