"""sam_enroll's response_mac: the downgrade is opt-in, shown in the result and a warning, never for a wrong MAC."""

import copy

from ansible.module_utils import _internal as module_utils_internal
from conftest import base_mesh, find
from enroll_fake import ADMIN_TOKEN, API_TOKEN, JOIN_TOKEN
from inprocess import collection_on_path, run_module

_COLLECTION_BASE = collection_on_path()
SECRETS = (API_TOKEN, ADMIN_TOKEN, JOIN_TOKEN.decode())


def enroll(rr, state_file, **extra):
    args = {"claim": copy.deepcopy(find(base_mesh(), "SAMEnrollmentClaim", "leaf-b")), "rr_urls": [rr.url],
            "state_file": str(state_file), "api_token": API_TOKEN, "secret": JOIN_TOKEN.decode(), "timeout": 2}
    args.update(extra)
    result, raw = run_module("sam_enroll", args)
    for secret in SECRETS:
        assert secret not in raw
    return result


def test_an_rr_without_a_mac_fails_by_default(rrs, tmp_path):
    result = enroll(rrs(mode="no-mac"), tmp_path / "state.json")
    assert result["failed"] and result["rule"] == "response-mac" and result["response_mac_verified"] == {}


def test_optional_enrolls_with_an_unverified_rr_and_warns(rrs, tmp_path, monkeypatch):
    # As on a managed host, so the module's warning lands in the result (see test_sam_bgp_module.py).
    monkeypatch.setattr(module_utils_internal, "is_controller", False, raising=False)
    rr = rrs(mode="no-mac")
    result = enroll(rr, tmp_path / "state.json", response_mac="optional")
    assert not result.get("failed") and result["changed"] and result["rrset"] == rr.rrset
    assert result["response_mac_verified"] == {rr.url: False}
    assert any("without a response MAC" in str(w) and rr.url in str(w) for w in result.get("warnings", [])), result


def test_a_signed_rr_is_reported_verified_and_not_warned_about(rrs, tmp_path):
    rr = rrs()
    result = enroll(rr, tmp_path / "state.json", response_mac="optional")
    assert result["response_mac_verified"] == {rr.url: True}
    assert not any(rr.url in str(w) for w in result.get("warnings", []))


def test_a_wrong_mac_fails_even_with_optional(rrs, tmp_path):
    result = enroll(rrs(mode="bad-mac"), tmp_path / "state.json", response_mac="optional")
    assert result["failed"] and result["rule"] == "response-mac"


def test_an_unknown_choice_is_refused(rrs, tmp_path):
    result = enroll(rrs(), tmp_path / "state.json", response_mac="off")
    assert result["failed"] and "response_mac" in result["msg"]
