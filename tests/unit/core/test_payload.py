"""Canonical payload and join HMAC: routerd byte compatibility, checked against openssl."""

import pathlib
import shutil
import subprocess

import pytest
import yaml

from boma_mesh_utils.sam.core import payload
from boma_mesh_utils.sam.io.tokens import read_token

VECTORS = yaml.safe_load((pathlib.Path(__file__).parents[2] / "fixtures" / "hmac_vectors.yaml").read_text())["vectors"]

# routerd's own expected payload for its WireGuard claim test (pkg/samenrollment), typed in by hand:
# scalars trimmed, owned addresses and allowedIPs sorted, admin-owned fields absent.
ROUTERD_EXPECTED = "\n".join([
    "policyRef=SAMEnrollmentPolicy/cloudedge-leaves",
    "rrSetRef=SAMRRSet/cloudedge-rrs",
    "leafID=leaf-a",
    "joinAudience=cloudedge-public-underlay",
    "joinNonce=nonce-1",
    "joinTimestamp=2026-06-28T00:00:00Z",
    "tunnelAddress=10.255.0.31/32",
    "endpoint=198.51.100.31",
    "mobility.ownedAddresses=10.77.60.30/32,10.77.60.31/32",
    "bgp.asn=64577",
    "bgp.routerID=10.255.0.31",
    "wireGuard.publicKey=LEAF_A_WIREGUARD_PUBLIC_KEY",
    "wireGuard.endpoint=198.51.100.31:51820",
    "wireGuard.allowedIPs=10.20.0.31/32,10.255.0.31/32",
    "wireGuard.persistentKeepalive=25",
])


def _vector(name):
    return next(v for v in VECTORS if v["name"] == name)


def _openssl_hmac(key, text):
    out = subprocess.run(["openssl", "dgst", "-sha256", "-mac", "HMAC", "-macopt", "hexkey:" + key.hex()],
                         input=text.encode("utf-8"), capture_output=True, check=True).stdout.decode()
    return out.strip().split()[-1]


def test_payload_matches_routerd_expected_bytes():
    assert payload.canonical_payload(_vector("routerd-wireguard-claim-sorted-and-trimmed")["spec"]) == ROUTERD_EXPECTED


def test_payload_has_no_trailing_newline_and_no_admin_fields():
    text = payload.canonical_payload(_vector("routerd-wireguard-claim-sorted-and-trimmed")["spec"])
    assert not text.endswith("\n")
    assert "joinHMAC" not in text and "expiresAt" not in text and "revoked" not in text


def test_unset_asn_and_keepalive_render_as_zero_and_empty_wireguard_fields_stay():
    text = payload.canonical_payload(_vector("no-wireguard-no-asn-renders-zeros")["spec"])
    lines = text.split("\n")
    assert "bgp.asn=0" in lines and "wireGuard.persistentKeepalive=0" in lines
    assert {"wireGuard.publicKey=", "wireGuard.endpoint=", "wireGuard.allowedIPs=", "bgp.routerID="} <= set(lines)


def test_direct_mesh_true_is_inserted_right_after_endpoint():
    lines = payload.canonical_payload(_vector("direct-mesh-true-inserted-after-endpoint")["spec"]).split("\n")
    assert lines[7].startswith("endpoint=") and lines[8] == "directMesh=true"
    assert lines[9].startswith("mobility.ownedAddresses=")


def test_direct_mesh_false_is_omitted_entirely():
    text = payload.canonical_payload(_vector("direct-mesh-false-is-omitted")["spec"])
    assert "directMesh" not in text
    same = dict(_vector("direct-mesh-false-is-omitted")["spec"])
    del same["directMesh"]
    assert payload.canonical_payload(same) == text


def test_list_items_are_byte_sorted_and_not_trimmed():
    text = payload.canonical_payload(_vector("list-items-not-trimmed-and-byte-sorted")["spec"])
    assert "mobility.ownedAddresses= 10.77.60.10/32,10.77.60.100/32,10.77.60.9/32" in text
    assert "wireGuard.allowedIPs=10.20.0.10/32,10.20.0.9/32" in text
    assert "bgp.asn=4200000000" in text


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_join_hmac_vectors(vector):
    key = payload.secret_key(vector["key"], vector.get("base64", False))
    assert payload.canonical_payload(vector["spec"]) == vector["payload"]
    assert payload.join_hmac(key, vector["spec"]) == vector["hmac"]


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is installed by make setup")
@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_join_hmac_equals_openssl_computed_now(vector):
    key = payload.secret_key(vector["key"], vector.get("base64", False))
    assert payload.join_hmac(key, vector["spec"]) == _openssl_hmac(key, vector["payload"])


def test_hmac_is_lowercase_hex_and_verifies_in_constant_time_path():
    spec = dict(_vector("no-wireguard-no-asn-renders-zeros")["spec"])
    key = payload.secret_key("k")
    spec["joinHMAC"] = payload.join_hmac(key, spec)
    assert payload.is_hmac_hex(spec["joinHMAC"])
    assert payload.verify_join_hmac(key, spec)
    spec["joinHMAC"] = " " + spec["joinHMAC"] + "\n"
    assert payload.verify_join_hmac(key, spec), "the submitted HMAC is trimmed like routerd does"
    spec["joinHMAC"] = spec["joinHMAC"].strip().upper()
    assert not payload.verify_join_hmac(key, spec)


def test_secret_from_file_bytes_is_trimmed(tmp_path):
    token = tmp_path / "token"
    token.write_bytes(b"  example-token\n\n")
    assert read_token(file=str(token)) == b"example-token"
    assert read_token(env="TOK", environ={"TOK": "example-token\n"}) == b"example-token"


def test_go_trim_space_keeps_ascii_control_separators():
    # Python's str.strip() would remove U+001C; Go's strings.TrimSpace does not.
    assert payload.canonical_payload({"leafID": "\x1cleaf\u00a0"}).split("\n")[2] == "leafID=\x1cleaf"


def test_unreadable_token_reasons_never_contain_the_value(tmp_path):
    assert read_token(file=str(tmp_path / "missing")).endswith("does not exist")
    assert read_token(env="NOPE", environ={}) == "environment variable NOPE is not set"
    bad = tmp_path / "b64"
    bad.write_text("not*base64-secret-value")
    reason = read_token(file=str(bad), is_base64=True)
    assert isinstance(reason, str) and "secret-value" not in reason


def test_empty_token_is_refused():
    with pytest.raises(payload.SecretError):
        payload.secret_key(b" \n")
