"""core/records: the RR's records as claim resources, for the service's desired state and for sam_rr.

The Jinja sam_rr's mesh.yml used up to 0.1.0 is kept as the oracle (with Ansible's own filters): the filter
that replaced it must give the same resources, and the Registry must build its claims from the same function.
"""

import ast

import jinja2
from ansible.plugins.filter.core import FilterModule

from boma_mesh_utils.sam.core.loader import load_resources
from boma_mesh_utils.sam.core.records import overlay, record_claims
from boma_mesh_utils.sam.core.registry import Registry
from support import synthetic

STAMP = "2026-11-23T11:59:00Z"
KEY = b"records-test-token"

FORMER_JINJA = """
{%- set out = [] -%}
{%- for r in (_sam_rr_records.json | default({})).records | default([]) if not r.revoked -%}
{%- set spec = r.spec | dict2items | rejectattr('key', 'in', ['expiresAt', 'revoked']) | items2dict -%}
{%- set _ = out.append({'apiVersion': 'mobility.routerd.net/v1alpha1', 'kind': 'SAMEnrollmentClaim',
    'metadata': {'name': r.name},
    'spec': spec | combine({'expiresAt': r.expiresAt} if r.expiresAt else {})}) -%}
{%- endfor -%}
{{ out }}
"""


def _former(records):
    env = jinja2.Environment(autoescape=False)
    ansible_filters = FilterModule().filters()
    env.filters.update(ansible_filters)
    # Ansible's templar turns Jinja's generators (rejectattr) into lists between filters; plain Jinja does not.
    env.filters["items2dict"] = lambda items: ansible_filters["items2dict"](list(items))
    return ast.literal_eval(env.from_string(FORMER_JINJA).render(_sam_rr_records={"json": {"records": records}}))


def record(name, spec, **extra):
    rec = {"name": name, "policy": "bench", "nonce": "n-" + name, "spec": spec, "generation": 1,
           "acceptedAt": STAMP, "expiresAt": None, "revoked": False, "revokedReason": None}
    rec.update(extra)
    return rec


def _records():
    spec = {"leafID": "x", "expiresAt": "2027-01-01T00:00:00Z", "revoked": False, "joinNonce": "n"}
    return [
        record("plain", {"leafID": "plain", "joinNonce": "a"}),
        record("admin-expiry", dict(spec), expiresAt="2026-12-01T00:00:00Z"),   # replaces the submitted one
        record("submitted-expiry", dict(spec)),                                 # the submitted one is dropped
        record("revoked", dict(spec), revoked=True, revokedReason="lost"),
        record("zeta-before-alpha", {"leafID": "z", "revoked": True}),         # submitted revoked: dropped, kept
    ]


def test_record_claims_is_the_former_sam_rr_jinja():
    records = _records()
    got = record_claims(records)
    assert got == _former(records)
    assert [c["metadata"]["name"] for c in got] == ["plain", "admin-expiry", "submitted-expiry", "zeta-before-alpha"]
    assert got[1]["spec"] == {"leafID": "x", "joinNonce": "n", "expiresAt": "2026-12-01T00:00:00Z"}
    assert got[2]["spec"] == {"leafID": "x", "joinNonce": "n"}
    assert records[1]["spec"]["expiresAt"] == "2027-01-01T00:00:00Z", "the records are not changed"
    assert record_claims([]) == _former([]) == []


def test_overlay_marks_a_revoked_record():
    assert overlay(record("r", {"leafID": "r"}, revoked=True)) == {"leafID": "r", "revoked": True}


def test_the_registry_builds_its_claims_with_record_claims():
    resources, _findings = load_resources([("rr", {"resources": synthetic.service_documents("/nonexistent")})])
    docs = synthetic.signed_claims(3, KEY, timestamp=STAMP)
    records = [record(d["metadata"]["name"], d["spec"]) for d in docs]
    records[1].update(revoked=True)
    records[2].update(expiresAt="2026-11-23T12:30:00Z")
    reg = Registry(resources, records)
    claims = [r for r in reg.desired_resources() if r.kind == "SAMEnrollmentClaim"]
    # No token is known here, so nothing caps a lease: the service's claims are exactly the role's.
    assert [(r.name, r.spec) for r in claims] == [(c["metadata"]["name"], c["spec"]) for c in record_claims(records)]
    assert [r.name for r in claims] == ["leaf-0", "leaf-2"]
