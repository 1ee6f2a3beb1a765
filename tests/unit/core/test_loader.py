"""Documents load from routerd Router YAML and from boma.mesh variables alike."""

from conftest import base_mesh, claim, rules, run

from boma_mesh_utils.sam.core.fields import parse_duration, parse_time
from boma_mesh_utils.sam.core.loader import load_resources
from boma_mesh_utils.sam.core.validate import validate_documents


def _router(resources):
    return {"apiVersion": "routerd.net/v1alpha1", "kind": "Router", "metadata": {"name": "rr-a"},
            "spec": {"resources": resources}}


def test_router_document_and_vars_mapping_load_the_same_resources():
    docs = base_mesh()
    from_router, f1 = load_resources([("rr-a.yaml", _router(docs))])
    from_vars, f2 = load_resources([("vars", {"sam_resources": docs[:6], "sam_node_resources": docs[6:]})])
    assert not f1 and not f2
    assert [r.ref for r in from_router] == [r.ref for r in from_vars]


def test_other_kinds_are_ignored_not_errors():
    docs = base_mesh() + [
        {"apiVersion": "net.routerd.net/v1alpha1", "kind": "Interface", "metadata": {"name": "private-wan"},
         "spec": {"ifname": "private-wan", "mtu": 1500}},
        {"kind": "WireGuardInterface", "metadata": {"name": "wg-cloudedge"}, "spec": {"listenPort": 51820}},
    ]
    report = validate_documents([("rr-a.yaml", _router(docs))], tokens={})
    assert not report.errors


def test_identical_duplicates_merge_and_conflicting_ones_are_reported():
    a, b = claim("leaf-b", 32), claim("leaf-b", 32)
    resources, findings = load_resources([("one", [a]), ("two", [b])])
    assert len(resources) == 1 and not findings
    c = claim("leaf-b", 33)
    findings = load_resources([("one", [a]), ("two", [c])])[1]
    (f,) = findings
    assert (f.resource, f.rule) == ("SAMEnrollmentClaim/leaf-b", "conflicting-definition")
    assert "one" in f.message and "two" in f.message


def test_bad_envelopes_name_where_they_are():
    bad = ["x", {"kind": "SAMRRSet"}, {"metadata": {"name": "n"}},
           {"kind": "MobilityPool", "metadata": {"name": "p"}, "spec": []}]
    findings = load_resources([("f.yaml", {"resources": bad})])[1]
    assert [(f.resource, f.path, f.rule) for f in findings] == [
        ("f.yaml:resources[0]", "", "type"),
        ("f.yaml:resources[1] (SAMRRSet)", "metadata.name", "required"),
        ("f.yaml:resources[2]", "kind", "required"),
        ("MobilityPool/p", "spec", "type"),
    ]


def test_unknown_document_shape_is_a_finding():
    findings = load_resources([("x", 42), ("y", {"foo": 1})])[1]
    assert [f.rule for f in findings] == ["document-shape", "document-shape"]


def test_wrong_field_types_become_findings_with_paths(mesh):
    mesh[0]["spec"]["members"][0]["bgp"]["asn"] = "many"
    mesh[0]["spec"]["members"][1] = "rr-b"
    report = run(mesh)
    got = {(f.resource, f.path, f.rule) for f in report.errors}
    assert ("SAMRRSet/cloudedge-rrs", "spec.members[0].bgp.asn", "type") in got
    assert ("SAMRRSet/cloudedge-rrs", "spec.members[1]", "type") in got


def test_every_finding_names_resource_path_and_rule(mesh):
    for doc in mesh:
        doc["spec"]["mode"] = 7
    for finding in run(mesh).findings:
        assert finding.resource and finding.rule and finding.message
        assert finding.path.startswith("spec") or finding.path == ""


def test_duration_and_time_formats():
    assert parse_duration("24h").total_seconds() == 86400
    assert parse_duration("1h30m").total_seconds() == 5400
    assert parse_duration("1.5h").total_seconds() == 5400
    assert parse_duration("24") is None and parse_duration("h") is None and parse_duration("-1h") is None
    assert parse_time("2026-06-28T00:00:00.123456789+02:00").utcoffset().total_seconds() == 7200
    assert parse_time("2026-02-30T00:00:00Z") is None and parse_time("2026-06-28") is None


def test_bad_ttl_and_timestamp_are_named(mesh):
    mesh[1]["spec"]["ttl"] = "one day"
    mesh[-1]["spec"]["joinTimestamp"] = "yesterday"
    report = run(mesh)
    assert {"duration", "rfc3339"} <= rules(report)
    assert report.active["cloudedge-leaves"] == [], "a bad policy ttl fails closed"
    assert report.active["cloudedge-private-fou-leaves"] == [], "a bad joinTimestamp fails closed"
    assert [c.name for c in report.active["cloudedge-public-wg-leaves"]] == ["leaf-a"]
