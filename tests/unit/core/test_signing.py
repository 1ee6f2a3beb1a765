"""Claim intent (issue 18): the inventory holds the identity, core/signing fills the signed fields."""

import datetime
import pathlib

import pytest

from boma_mesh_utils.sam.cli import common
from boma_mesh_utils.sam.core import keyring, payload, signing
from boma_mesh_utils.sam.core.findings import ERROR, INFO
from boma_mesh_utils.sam.core.loader import Resource, load_resources
from boma_mesh_utils.sam.core.materialize import materialize
from boma_mesh_utils.sam.core.registry import Registry, Rejection
from boma_mesh_utils.sam.core.validate import validate, validate_documents
from boma_mesh_utils.sam.io.tokens import read_token

FIXTURES = pathlib.Path(__file__).resolve().parents[2] / "fixtures"
INTENT = FIXTURES / "intent" / "cloudedge-leaf-a-wg-intent.yaml"
SIGNED = FIXTURES / "routerd" / "cloudedge-leaf-a-wg.yaml"
NOW = datetime.datetime(2026, 6, 28, 0, 0, tzinfo=datetime.timezone.utc)
NONCE = "0123456789abcdef0123456789abcdef"
WG_KEY = "I+4Y+hjlbT6+dKuOP/vY4/dy7IuYUtDmhTuhJSJgjwA="
POLICY = "cloudedge-public-wg-leaves"


def key():
    value = read_token(file=str(FIXTURES / "tokens" / "cloudedge-join-token"))
    assert isinstance(value, bytes)
    return value


def documents(path):
    return common.load_file(str(path))


def claim_spec(path):
    (doc,) = [r for _s, router in documents(path) for r in router["spec"]["resources"]
              if r["kind"] == "SAMEnrollmentClaim"]
    return doc["spec"]


def test_the_fixture_is_the_routerd_claim_without_its_signed_fields():
    intent, signed = claim_spec(INTENT), claim_spec(SIGNED)
    assert signing.is_intent(intent) and not signing.is_intent(signed)
    assert "publicKey" not in intent["wireGuard"]
    assert signing.intent_digest(intent) == signing.intent_digest(signed)


@pytest.mark.parametrize("field", signing.SIGNED_FIELDS)
def test_any_missing_or_empty_signed_field_makes_an_intent(field):
    spec = dict(claim_spec(SIGNED))
    spec[field] = "  "
    assert signing.is_intent(spec)
    del spec[field]
    assert signing.is_intent(spec)
    assert signing.is_intent(None)


def test_sign_claim_is_byte_compatible_with_the_routerd_signed_fixture():
    intent = claim_spec(INTENT)
    before = repr(intent)
    signed = signing.sign_claim(intent, key(), NONCE, NOW, wg_public_key=WG_KEY)
    assert repr(intent) == before                       # a copy: the intent is untouched
    expected = dict(claim_spec(SIGNED), joinNonce=NONCE)
    expected["joinHMAC"] = payload.join_hmac(key(), expected)
    assert signed == expected
    assert signed["joinTimestamp"] == "2026-06-28T00:00:00Z"
    assert payload.verify_join_hmac(key(), signed)
    assert keyring.signer(keyring.keys_of(key()), signed).id == "default"
    # With the fixture's own nonce the payload is the one routerd signed.
    assert payload.join_hmac(key(), dict(signed, joinNonce="leaf-a-0001")) == claim_spec(SIGNED)["joinHMAC"]


def test_sign_claim_creates_wireguard_only_for_a_key_and_replaces_an_old_signature():
    spec = {k: v for k, v in claim_spec(INTENT).items() if k != "wireGuard"}
    assert "wireGuard" not in signing.sign_claim(spec, key(), NONCE, NOW)
    signed = signing.sign_claim(spec, key(), NONCE, NOW, wg_public_key=WG_KEY)
    assert signed["wireGuard"] == {"publicKey": WG_KEY}
    later = NOW + datetime.timedelta(seconds=30)
    renewed = signing.sign_claim(signed, key(), "f" * 32, later)
    assert renewed["wireGuard"]["publicKey"] == WG_KEY and renewed["joinTimestamp"] == "2026-06-28T00:00:30Z"
    assert renewed["joinHMAC"] != signed["joinHMAC"] and payload.verify_join_hmac(key(), renewed)
    naive_utc = signing.sign_claim(spec, key(), NONCE, NOW.astimezone(datetime.timezone(datetime.timedelta(hours=9))))
    assert naive_utc["joinTimestamp"] == "2026-06-28T00:00:00Z"


@pytest.mark.parametrize("nonce", ["", "leaf-a-0001", "0123456789ABCDEF0123456789ABCDEF", "0" * 31, "0" * 33, None,
                                   "0" * 31 + "\n"])
def test_a_bad_nonce_names_the_field_and_the_rule(nonce):
    with pytest.raises(ValueError, match=r"spec\.joinNonce \[join-nonce-format\] must be 32 lowercase hex"):
        signing.sign_claim(claim_spec(INTENT), key(), nonce, NOW)


@pytest.mark.parametrize("bad", [b"", "", None])
def test_an_empty_key_is_refused_without_quoting_it(bad):
    with pytest.raises(ValueError, match=r"key \[join-token\] must be non-empty"):
        signing.sign_claim(claim_spec(INTENT), bad, NONCE, NOW)


def test_intent_digest_changes_with_the_intent_only():
    intent = claim_spec(INTENT)
    digest = signing.intent_digest(intent)
    assert digest.startswith("sha256:") and len(digest) == 7 + 64
    signed = signing.sign_claim(intent, key(), NONCE, NOW, wg_public_key=WG_KEY)
    assert signing.intent_digest(signed) == digest
    assert signing.intent_digest(dict(intent, endpoint="10.20.0.41")) != digest
    moved = dict(intent, mobility={"ownedAddresses": ["10.77.60.41/32"]})
    assert signing.intent_digest(moved) != digest


# --------------------------------------------------------------------------- validation and materialization


def test_leaf_side_validation_accepts_the_intent_and_never_makes_it_active():
    strict = validate_documents(documents(INTENT), tokens={POLICY: key()}, now=NOW)
    assert {(f.path, f.rule) for f in strict.errors} == {
        ("spec.joinNonce", "join-auth-required"), ("spec.joinTimestamp", "join-auth-required"),
        ("spec.joinHMAC", "join-auth-required")}
    report = validate_documents(documents(INTENT), tokens={POLICY: key()}, now=NOW, intent_ok=True)
    assert report.ok and report.intents == ["leaf-a"]
    assert all(not claims for claims in report.active.values())
    (note,) = [f for f in report.findings if f.rule == "claim-intent"]
    assert note.severity == INFO and note.resource == "SAMEnrollmentClaim/leaf-a"


def test_intent_still_gets_every_other_claim_rule():
    docs = documents(INTENT)
    claim = next(r for r in docs[0][1]["spec"]["resources"] if r["kind"] == "SAMEnrollmentClaim")
    claim["spec"]["tunnelAddress"] = "10.254.0.31/32"
    report = validate_documents(docs, now=NOW, intent_ok=True)
    assert [f.rule for f in report.errors] == ["tunnel-address-prefix"] and report.intents == []


def test_a_signed_claim_is_checked_as_before_under_intent_ok():
    signed = validate_documents(documents(SIGNED), tokens={POLICY: b"another-token"}, now=NOW, intent_ok=True)
    assert [f.rule for f in signed.errors] == ["join-hmac"]
    good = validate_documents(documents(SIGNED), tokens={POLICY: key()}, now=NOW, intent_ok=True)
    assert good.ok and good.verified == ["leaf-a"] and good.intents == []


def test_leaf_materializes_the_same_from_the_intent_and_from_the_signed_claim():
    from_intent = materialize(validate_documents(documents(INTENT), now=NOW, intent_ok=True), "leaf-a")
    from_signed = materialize(validate_documents(documents(SIGNED), now=NOW), "leaf-a")
    assert from_intent == from_signed and from_intent["role"] == "leaf"


def test_the_rr_refuses_an_unsigned_submission_exactly_as_before():
    rr, _findings = load_resources(documents(FIXTURES / "routerd" / "cloudedge-rr-a.yaml"))
    reg = Registry(rr)
    intent = claim_spec(INTENT)
    with pytest.raises(Rejection) as exc:
        reg.check("leaf-a", intent, {POLICY: key()}, NOW)
    assert (exc.value.status, exc.value.rule) == (422, "join-auth-required")
    assert {f["path"] for f in exc.value.findings} == {"spec.joinNonce", "spec.joinTimestamp", "spec.joinHMAC"}
    signed = signing.sign_claim(intent, key(), NONCE, NOW, wg_public_key=WG_KEY)
    claim, policy, signer, _digest = reg.check("leaf-a", signed, {POLICY: key()}, NOW)
    assert (claim.nonce, policy, signer.id) == (NONCE, POLICY, "default")


def test_an_intent_in_an_rr_document_set_is_an_error_without_intent_ok():
    rr, findings = load_resources(documents(FIXTURES / "routerd" / "cloudedge-rr-a.yaml"))
    intent = Resource("SAMEnrollmentClaim", "leaf-a", claim_spec(INTENT))
    report = validate(rr + [intent], now=NOW, findings=findings)
    assert {f.rule for f in report.errors if f.severity == ERROR} == {"join-auth-required"}
