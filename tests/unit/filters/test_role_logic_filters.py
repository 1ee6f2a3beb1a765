"""Filters boma.mesh.vault_problems and boma.mesh.record_claims: the roles' logic, called through Ansible's
filter interface (types checked, inline-vaulted values decrypted, never a value in a result or an error)."""

import importlib

import pytest
from ansible.errors import AnsibleFilterError
from inprocess import collection_on_path

_COLLECTION_BASE = collection_on_path()
SECRET = "filter-planted-secret-6e1f"
POLICY = "fou"


def _filters(name):
    module = importlib.import_module("ansible_collections.boma.mesh.plugins.filter." + name)
    return module.FilterModule().filters()


def _policy(**spec):
    return {"kind": "SAMEnrollmentPolicy", "metadata": {"name": POLICY}, "spec": spec}


class EncryptedString:
    """Stands for Ansible's inline-vaulted value: only str() gives the plaintext."""

    def __init__(self, plain, fails=False):
        self._plain, self._fails = plain, fails

    def __str__(self):
        if self._fails:
            raise ValueError("cannot decrypt %s" % self._plain)
        return self._plain


def test_vault_problems_is_registered_and_names_each_problem():
    vault_problems = _filters("vault_problems")["vault_problems"]
    documents = [_policy(joinTokens=[{"id": "v1", "file": "/a"}, {"id": "v2", "file": "/b"}])]
    sam = {"api_token": SECRET, "admin_token": "CHANGEME", "join_tokens": {POLICY: {"v1": SECRET, "v0": SECRET}}}
    got = vault_problems(sam, documents, keys=["api_token", "admin_token"])
    assert got["missing"] == ["vault.sam.admin_token", "vault.sam.join_tokens.fou.v2"]
    assert got["unlisted"] == ["vault.sam.join_tokens.fou.v0"] and got["form"] == []
    assert got["message"].startswith("Set these vault entries (not CHANGEME) with `make edit-vault`: ")
    assert SECRET not in repr(got)
    leaf = vault_problems(sam, documents, keys=["api_token"], policies=[POLICY])
    assert leaf["missing"] == ["vault.sam.join_tokens.fou.v2"]


def test_vault_problems_decrypts_inline_vaulted_values_and_never_shows_them():
    vault_problems = _filters("vault_problems")["vault_problems"]
    documents = [_policy(joinTokenFrom={"file": "/etc/boma/sam/join-tokens/fou"})]
    sam = {"api_token": EncryptedString(SECRET), "join_tokens": {POLICY: EncryptedString("CHANGEME")}}
    got = vault_problems(sam, documents, keys=["api_token"])
    assert got["missing"] == ["vault.sam.join_tokens.fou"]
    sam["join_tokens"][POLICY] = EncryptedString(SECRET, fails=True)
    with pytest.raises(AnsibleFilterError) as exc:
        vault_problems(sam, documents, keys=["api_token"])
    assert "vault.sam.join_tokens.fou [vault] cannot be decrypted" in str(exc.value)
    assert SECRET not in str(exc.value) and exc.value.__cause__ is None and exc.value.__suppress_context__


@pytest.mark.parametrize(("args", "kwargs", "message"), [
    ((SECRET,), {}, "input [type] must be the vault.sam mapping, got str"),
    (({"api_token": SECRET}, SECRET), {}, "documents [type] must be a list of resources, got str"),
    (({"api_token": SECRET}, []), {"keys": SECRET}, "keys [type] must be a list of strings"),
    (({"api_token": SECRET}, []), {"policies": [1]}, "policies [type] must be a list of strings"),
])
def test_vault_problems_errors_name_the_argument_not_the_value(args, kwargs, message):
    with pytest.raises(AnsibleFilterError) as exc:
        _filters("vault_problems")["vault_problems"](*args, **kwargs)
    assert message in str(exc.value) and SECRET not in str(exc.value)


def test_record_claims_is_registered_and_overlays_the_admin_fields():
    record_claims = _filters("record_claims")["record_claims"]
    records = [{"name": "leaf-b", "spec": {"leafID": "leaf-b", "expiresAt": "2030-01-01T00:00:00Z"},
                "expiresAt": "2026-12-01T00:00:00Z", "revoked": False},
               {"name": "leaf-c", "spec": {"leafID": "leaf-c"}, "expiresAt": None, "revoked": True}]
    assert record_claims(records) == [{
        "apiVersion": "mobility.routerd.net/v1alpha1", "kind": "SAMEnrollmentClaim", "metadata": {"name": "leaf-b"},
        "spec": {"leafID": "leaf-b", "expiresAt": "2026-12-01T00:00:00Z"}}]


@pytest.mark.parametrize(("records", "message"), [
    ({"records": []}, "input [type] must be a list of records, got dict"),
    ([{"name": "a"}], "records[0].spec [type] must be a mapping"),
    ([{"spec": {}}], "records[0].name [type] must be a string"),
    (["a"], "records[0].name [type] must be a string"),
])
def test_record_claims_errors_name_the_field(records, message):
    with pytest.raises(AnsibleFilterError, match=r"^record_claims: ") as exc:
        _filters("record_claims")["record_claims"](records)
    assert message in str(exc.value)
