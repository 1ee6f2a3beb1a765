"""Issue 17 class 4: the v2 response MAC is bound to the request (core/wire.py).

The MAC covers "boma-response-mac/2", the status, method and request target, the leaf's request nonce, the
claim digest and the body; changing any one of them (an answer replayed to another request, another status,
another claim) makes it invalid.  A legacy (body-only) MAC never passes as v2.
"""

import hashlib
import hmac

import pytest

from boma_mesh_utils.sam.core import wire

KEY = b"join-token-for-the-mac-tests"
NONCE = "0123456789abcdef0123456789abcdef"
TARGET = wire.topology_path("cloudedge-rrs", "leaf-b")
DIGEST = "sha256:" + "ab" * 32
BODY = b'{"kind":"SAMEnrollmentTopology"}'
GOOD = dict(status=200, method="GET", target=TARGET, nonce=NONCE, digest=DIGEST, body=BODY)


def mac(key=KEY, **changes):
    args = dict(GOOD, **changes)
    return wire.response_mac_v2(key, args["status"], args["method"], args["target"], args["nonce"], args["digest"],
                                args["body"])


def verify(value, key=KEY, **changes):
    args = dict(GOOD, **changes)
    return wire.verify_response_mac_v2(key, value, args["status"], args["method"], args["target"], args["nonce"],
                                       args["digest"], args["body"])


def test_v2_input_is_the_documented_one():
    text = "boma-response-mac/2\n200\nGET %s\n%s\n%s\n" % (TARGET, NONCE, DIGEST)
    expected = hmac.new(KEY, text.encode() + BODY, hashlib.sha256).hexdigest()
    assert mac() == "v2=" + expected
    assert verify(mac()) and verify(" %s\n" % mac())


def test_no_digest_is_a_dash():
    text = "boma-response-mac/2\n404\nGET %s\n%s\n-\n" % (TARGET, NONCE)
    assert mac(status=404, digest=None) == "v2=" + hmac.new(KEY, text.encode() + BODY, hashlib.sha256).hexdigest()
    assert mac(digest=None) == mac(digest="-")


@pytest.mark.parametrize("change", [
    {"status": 410},
    {"status": 409},
    {"method": "POST"},
    {"target": wire.topology_path("cloudedge-rrs", "leaf-c")},
    {"target": wire.topology_path("other-rrs", "leaf-b")},
    {"target": wire.submit_path()},
    {"nonce": "f" * 32},
    {"nonce": NONCE[:-1] + "0"},
    {"digest": "sha256:" + "cd" * 32},
    {"digest": None},
    {"body": BODY + b" "},
    {"body": b'{"kind":"SAMEnrollmentTopology","generation":2}'},
], ids=lambda change: "-".join("%s=%s" % item for item in change.items())[:40])
def test_the_mac_of_one_request_fails_for_any_other(change):
    """What a replayed or redirected answer looks like to the leaf: the MAC of the original does not verify."""
    assert verify(mac(**change), **change), "the changed inputs verify with their own MAC"
    assert not verify(mac(), **change)
    assert not verify(mac(**change))


def test_another_key_a_legacy_mac_and_garbage_fail():
    assert not verify(mac(key=b"an-impostor-guess"))
    assert not verify(mac(), key=b"an-impostor-guess")
    assert not verify(wire.response_mac(KEY, BODY)), "a body-only MAC is not a v2 MAC"
    assert not verify("v2=" + wire.response_mac(KEY, BODY))
    assert not verify(mac()[3:]), "the hex without its version"
    for value in (None, "", "v2=", 42, mac().upper()):
        assert not verify(value)
    assert not verify(mac(), key=b""), "no key, no verified answer"
    assert not verify(mac(nonce="x"), nonce="x"), "the client checks the nonce format too"


def test_the_header_value_is_legacy_without_a_nonce_and_v2_with_one():
    legacy = wire.response_mac_header(KEY, BODY, 200, "GET", TARGET, None, DIGEST)
    assert legacy == wire.response_mac(KEY, BODY) and wire.verify_response_mac(KEY, BODY, legacy)
    assert wire.response_mac_header(KEY, BODY, 200, "GET", TARGET, NONCE, DIGEST) == mac()


@pytest.mark.parametrize("nonce", ["0" * 16, "0123456789abcdef" * 4, NONCE])
def test_request_nonces_the_rr_accepts(nonce):
    assert wire.is_request_nonce(nonce)


@pytest.mark.parametrize("nonce", [None, "", "0" * 15, "0" * 65, NONCE.upper(), "g" * 32, NONCE + "\n",
                                   " " + NONCE, "0123456789abcdef\u0660", 12345678901234567])
def test_request_nonces_the_rr_refuses(nonce):
    assert not wire.is_request_nonce(nonce)


def test_a_mac_key_never_shows_its_key():
    key = wire.MacKey(KEY, DIGEST)
    assert key.key == KEY and key.digest == DIGEST
    assert KEY.decode() not in repr(key) and KEY.decode() not in str(key)
