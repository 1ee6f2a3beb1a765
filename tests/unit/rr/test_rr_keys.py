"""Issue 18: each RR serves its own WireGuard public key and the ones learned from its peers."""

import base64
import logging
import os

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from boma_mesh_utils.sam.core.loader import load_resources
from boma_mesh_utils.sam.rr import rr_keys
from boma_mesh_utils.sam.rr.service import Service
from support import synthetic

OTHER = base64.b64encode(b"k" * 32).decode()


def keypair():
    key = X25519PrivateKey.generate()
    private = base64.b64encode(key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())).decode()
    public = base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()
    return private, public


def write_key(path, private, mode=0o600):
    tmp = str(path) + ".new"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write(private + "\n")
    os.chmod(tmp, mode)
    os.replace(tmp, str(path))


def service(tmp_path, node="rr-a"):
    token = tmp_path / "join"
    token.write_text("join-token-0123456789\n")
    resources, _findings = load_resources([("rr.json", {"resources": synthetic.service_documents(str(token))})])
    return Service(node, resources, str(tmp_path / "rr.db"), b"leaf-token-0123456789", b"admin-token-0123456789",
                   lambda policy: None)


def test_the_public_key_is_derived_and_bad_files_never_show_their_content(tmp_path):
    private, public = keypair()
    path = tmp_path / "wg.key"
    assert rr_keys.read_public_key(str(path)) is None
    write_key(path, private)
    assert rr_keys.read_public_key(str(path)) == rr_keys.public_key_of(private) == public
    write_key(path, private, 0o644)
    with pytest.raises(rr_keys.KeyFileError) as exc:
        rr_keys.read_public_key(str(path))
    assert "0644" in str(exc.value) and private not in str(exc.value)
    write_key(path, private[:-2] + "!!")
    with pytest.raises(rr_keys.KeyFileError) as exc:
        rr_keys.read_public_key(str(path))
    assert private[:20] not in str(exc.value)


def test_own_key_is_served_and_a_rotation_is_picked_up_from_the_file(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    private, public = keypair()
    path = tmp_path / "wg.key"
    write_key(path, private)
    svc = service(tmp_path)
    keys = rr_keys.MemberKeys(svc, "rr-a", str(path))
    spec = svc.registry.rrset_docs["rrs"].spec
    served = keys.merge("rrs", spec)
    assert served["members"][0]["wireGuard"]["publicKey"] == public and "wireGuard" not in spec["members"][0]
    assert keys.advert() == {"node": "rr-a", "publicKey": public}
    private2, public2 = keypair()
    write_key(path, private2)
    assert keys.merge("rrs", spec)["members"][0]["wireGuard"]["publicKey"] == public2
    write_key(path, "garbage")            # an unusable file: the last good key stays, one error line
    assert keys.advert()["publicKey"] == public2
    assert private not in caplog.text and private2 not in caplog.text
    svc.close()


def test_a_rotated_key_file_triggers_the_reconcile_once(tmp_path):
    """The reconcile re-keys the RR's WireGuard interface: a new key file must wake it, even with no claim change."""
    private, _public = keypair()
    path = tmp_path / "wg.key"
    write_key(path, private)
    svc = service(tmp_path)
    woken = []
    svc.on_change = lambda: woken.append(1)
    keys = rr_keys.MemberKeys(svc, "rr-a", str(path))
    assert keys.advert() and not woken                     # start-up: the reconcile runs at start anyway
    write_key(path, keypair()[0])
    keys.advert()
    keys.advert()
    assert len(woken) == 1                                 # noticed once, on the first request after the change
    write_key(path, "garbage")                             # unusable: the old key stays, nothing to re-apply
    keys.advert()
    assert len(woken) == 1
    svc.close()


def test_a_bad_key_file_stops_the_start_and_a_missing_one_is_a_warning(tmp_path):
    svc = service(tmp_path)
    path = tmp_path / "wg.key"
    assert rr_keys.MemberKeys(svc, "rr-a", str(path)).advert() is None
    write_key(path, "x" * 44)
    with pytest.raises(rr_keys.KeyFileError):
        rr_keys.MemberKeys(svc, "rr-a", str(path))
    svc.close()


@pytest.mark.parametrize("entry", [
    "text", {"node": "rr-a", "publicKey": OTHER},          # its own key never comes from a peer
    {"node": "rr-c", "publicKey": OTHER},                  # not a member of a served RRSet
    {"node": "rr-b", "publicKey": OTHER[:-1]}, {"node": "rr-b", "publicKey": 5}, {"node": "rr b", "publicKey": OTHER},
    {"node": ["rr-b"], "publicKey": OTHER}, {"publicKey": OTHER}])
def test_a_hostile_or_broken_peer_key_is_refused(tmp_path, entry):
    svc = service(tmp_path)
    keys = rr_keys.MemberKeys(svc, "rr-a")
    assert keys.learn(entry) is False
    assert keys.keys() == {}
    svc.close()


def test_a_learned_key_is_served_persisted_and_wins_over_the_document(tmp_path):
    svc = service(tmp_path)
    keys = rr_keys.MemberKeys(svc, "rr-a")
    assert keys.learn(None) is False
    assert keys.learn({"node": "rr-b", "publicKey": OTHER}) is True
    assert keys.learn({"node": "rr-b", "publicKey": OTHER}) is False
    doc = svc.registry.rrset_docs["rrs"].spec
    spec = dict(doc, members=[doc["members"][0], dict(doc["members"][1], wireGuard={"publicKey": "A" * 43 + "="})])
    for _attempt in range(3):
        assert keys.merge("rrs", spec)["members"][1]["wireGuard"]["publicKey"] == OTHER
    audit = [a for a in svc.store.audit() if a["event"] == "rr-key-mismatch"]
    assert len(audit) == 1 and OTHER in audit[0]["detail"]["reason"]
    assert rr_keys.MemberKeys(svc, "rr-a").keys() == {"rr-b": OTHER}   # a restart keeps it
    svc.member_keys = keys
    assert "rrKey" not in svc.records("limit=5")[0]   # no key of its own: nothing to advertise
    svc.close()


def test_the_records_page_carries_this_rrs_key(tmp_path):
    private, public = keypair()
    write_key(tmp_path / "wg.key", private)
    svc = service(tmp_path)
    svc.member_keys = rr_keys.MemberKeys(svc, "rr-a", str(tmp_path / "wg.key"))
    page = svc.records("limit=5")[0]
    assert page["rrKey"] == {"node": "rr-a", "publicKey": public} and page["next"] is None
    assert private not in repr(page)
    svc.close()
