"""The routerd-shaped fixtures and the example inventories validate, and have the runbook's expected shapes.

Fixture files are loaded with ``common.load_file`` (timestamps stay the strings that were signed) and validated
with the core directly, at NOW, with the join tokens of ``tests/fixtures/tokens``.
"""

import base64
import datetime
import os
import pathlib

import pytest

from boma_mesh_utils.sam.cli import common
from boma_mesh_utils.sam.core import payload
from boma_mesh_utils.sam.core.findings import ERROR, INFO, WARNING
from boma_mesh_utils.sam.core.loader import load_resources
from boma_mesh_utils.sam.core.validate import route_admission, validate_documents
from boma_mesh_utils.sam.io import tokens

ROOT = pathlib.Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "tests" / "fixtures"
ROUTERD = FIXTURES / "routerd"
TOKEN_DIR = FIXTURES / "tokens"
INVENTORIES = ROOT / "inventories"
NOW = datetime.datetime(2026, 6, 28, 1, 0, tzinfo=datetime.timezone.utc)

POLICIES = {
    "cloudedge": ("cloudedge-leaves", "cloudedge-public-wg-leaves", "cloudedge-private-fou-leaves"),
    "pve-minimal": ("pve-wg-leaves", "pve-fou-leaves"),
}
TOKEN_FILES = {"cloudedge": "cloudedge-join-token", "pve-minimal": "pve-join-token"}
NON_SAM_KINDS = ("Interface", "IPv4StaticAddress", "WireGuardInterface", "SAMEnrollmentClient")
CLOUDEDGE_CLAIMS = ["leaf-pve", "leaf-a", "leaf-b"]
PVE_CLAIMS = ["pve-leaf-a", "pve-leaf-b"]
CLOUDEDGE_FILES = ["cloudedge-rr-a.yaml", "cloudedge-rr-b.yaml", "cloudedge-leaf-pve.yaml",
                   "cloudedge-leaf-a-wg.yaml", "cloudedge-leaf-b-fou.yaml"]
FETCHED = "pve-minimal-leaf-rrset-fetched.yaml"

# (mesh, fixture files validated as one document set, claims it holds)
CASES = [
    ("cloudedge", ["cloudedge-rr-a.yaml"], []),
    ("cloudedge", ["cloudedge-rr-b.yaml"], []),
    ("cloudedge", ["cloudedge-leaf-pve.yaml"], ["leaf-pve"]),
    ("cloudedge", ["cloudedge-leaf-a-wg.yaml"], ["leaf-a"]),
    ("cloudedge", ["cloudedge-leaf-b-fou.yaml"], ["leaf-b"]),
    ("cloudedge", ["cloudedge-rr-a.yaml", "cloudedge-rr-claims-seed.yaml"], CLOUDEDGE_CLAIMS),
    ("cloudedge", ["cloudedge-rr-b.yaml", "cloudedge-rr-claims-seed.yaml"], CLOUDEDGE_CLAIMS),
    ("pve-minimal", ["pve-minimal-rr.yaml"], []),
    ("pve-minimal", ["pve-minimal-leaf-a-wg.yaml"], ["pve-leaf-a"]),
    ("pve-minimal", ["pve-minimal-leaf-b-fou.yaml"], ["pve-leaf-b"]),
    ("pve-minimal", ["pve-minimal-rr.yaml", "pve-minimal-rr-claims-seed.yaml"], PVE_CLAIMS),
    # A leaf's effective config once SAMEnrollmentClient has stored the fetched RRSet.
    ("pve-minimal", ["pve-minimal-leaf-a-wg.yaml", FETCHED], ["pve-leaf-a"]),
    ("pve-minimal", ["pve-minimal-leaf-b-fou.yaml", FETCHED], ["pve-leaf-b"]),
    # The RR serves exactly the RRSet the leaves store: merging them is not a conflict.
    ("pve-minimal", ["pve-minimal-rr.yaml", FETCHED], []),
]
CASE_IDS = ["+".join(f.replace(".yaml", "") for f in case[1]) for case in CASES]


def token(mesh):
    key = tokens.read_token(file=str(TOKEN_DIR / TOKEN_FILES[mesh]))
    assert isinstance(key, bytes), key
    return key


def mesh_tokens(mesh):
    return dict.fromkeys(POLICIES[mesh], token(mesh))


def load(*names):
    docs = []
    for name in names:
        docs.extend(common.load_file(str(ROUTERD / name)))
    return docs


def resources(name):
    return [doc for source, router in load(name) for doc in router["spec"]["resources"]]


def by_kind(docs, kind):
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def sev(report, severity):
    return [f for f in report.findings if f.severity == severity]


def active(report):
    return sorted(c.name for claims in report.active.values() for c in claims)


# --------------------------------------------------------------------------- (a) routerd fixtures


def test_every_routerd_fixture_is_covered():
    covered = {name for case in CASES for name in case[1]}
    assert covered == {p.name for p in ROUTERD.glob("*.yaml")}


@pytest.mark.parametrize("mesh,files,claims", CASES, ids=CASE_IDS)
def test_fixture_validates_with_tokens(mesh, files, claims):
    report = validate_documents(load(*files), tokens=mesh_tokens(mesh), now=NOW)
    assert sev(report, ERROR) == []
    assert sev(report, WARNING) == []
    assert {f.rule for f in sev(report, INFO)} <= {"fetched-at-runtime"}
    assert sorted(report.verified) == sorted(claims)
    assert report.unverified == [] and report.skipped == []
    assert active(report) == sorted(claims)


@pytest.mark.parametrize("mesh,files,claims", CASES, ids=CASE_IDS)
def test_fixture_without_tokens_is_valid_but_unverified(mesh, files, claims):
    # joinTokenFrom names /usr/local/etc/routerd/secrets/..., absent on a build machine.
    report = validate_documents(load(*files), tokens=tokens.policy_tokens, now=NOW)
    for policy in report.mesh.policies.values():
        if os.path.exists(policy.token.file):
            pytest.skip("%s exists on this machine" % policy.token.file)
    assert sev(report, ERROR) == []
    assert sorted(report.unverified) == sorted(claims)
    assert report.verified == []
    notes = [f for f in report.findings if f.rule == "hmac-not-verified"]
    assert sev(report, WARNING) == notes
    used = {report.mesh.claims[name].policy_ref for name in claims}
    assert {f.resource for f in notes} == used
    assert all("does not exist" in f.message for f in notes)


def test_fetched_rrset_is_partial_and_only_lacks_what_the_leaf_holds():
    report = validate_documents(load(FETCHED), tokens={}, now=NOW)
    assert {(f.resource, f.rule) for f in report.errors} <= {("SAMRRSet/pve-rrs", "reference")}


def test_token_files_are_trimmed():
    for mesh, name in TOKEN_FILES.items():
        raw = (TOKEN_DIR / name).read_bytes()
        assert raw.endswith(b"\n") and b"not-secret" in raw
        assert token(mesh) == raw.strip()
    # The trailing newline is not part of the key: signing with it does not verify.
    spec = by_kind(resources("cloudedge-rr-claims-seed.yaml"), "SAMEnrollmentClaim")["leaf-b"]["spec"]
    assert payload.join_hmac(token("cloudedge"), spec) == spec["joinHMAC"]
    assert payload.join_hmac(token("cloudedge") + b"\n", spec) != spec["joinHMAC"]


def test_rr_admits_only_each_leafs_own_32():
    report = validate_documents(load("cloudedge-rr-a.yaml", "cloudedge-rr-claims-seed.yaml"),
                                tokens=mesh_tokens("cloudedge"), now=NOW)
    admit = route_admission(report).admit_route
    for octet in (21, 31, 32):
        assert admit("10.255.0.%d" % octet, "10.77.60.%d/32" % octet).accepted
    assert admit("10.255.0.32", "10.77.60.31/32").rule == "other-claim"
    assert admit("10.255.0.32", "10.77.60.0/24").rule == "pool-aggregate"


# --------------------------------------------------------------------------- (b) inventories


def inventory_hosts(name):
    doc = common.load_file(str(INVENTORIES / name / "hosts.yml"))[0][1]
    groups = doc["all"]["children"]
    return {group: dict(groups[group]["hosts"]) for group in ("sam_rrs", "sam_leaves")}


def inventory_docs(name, host):
    return (common.load_file(str(INVENTORIES / name / "group_vars" / "all" / "sam.yml"))
            + common.load_file(str(INVENTORIES / name / "host_vars" / (host + ".yml"))))


def host_vars(name, host):
    return inventory_docs(name, host)[1][1]


def leaf_claims(name):
    return [r for leaf in inventory_hosts(name)["sam_leaves"] for r in host_vars(name, leaf)["sam_node_resources"]
            if r["kind"] == "SAMEnrollmentClaim"]


INVENTORY_HOSTS = [(name, group, host) for name in POLICIES
                   for group, hosts in inventory_hosts(name).items() for host in hosts]


def test_inventory_layout():
    for name in POLICIES:
        hosts = inventory_hosts(name)
        assert hosts["sam_rrs"] and hosts["sam_leaves"]
        listed = {h for group in hosts.values() for h in group}
        assert {p.stem for p in (INVENTORIES / name / "host_vars").glob("*.yml")} == listed
        assert all(vars_.get("ansible_host") for group in hosts.values() for vars_ in group.values())
    assert sorted(inventory_hosts("cloudedge")["sam_rrs"]) == ["rr-a", "rr-b"]
    assert sorted(inventory_hosts("cloudedge")["sam_leaves"]) == ["leaf-a", "leaf-b", "leaf-pve"]


@pytest.mark.parametrize("name,group,host", INVENTORY_HOSTS, ids=["%s:%s" % (n, h) for n, g, h in INVENTORY_HOSTS])
def test_inventory_host_validates(name, group, host):
    hv = host_vars(name, host)
    assert hv["sam_node"] == host
    own = [r["metadata"]["name"] for r in hv["sam_node_resources"] if r["kind"] == "SAMEnrollmentClaim"]
    assert (group == "sam_leaves") == bool(own)
    report = validate_documents(inventory_docs(name, host), tokens=mesh_tokens(name), now=NOW)
    assert report.errors == [] and sev(report, WARNING) == []
    assert sorted(report.verified) == sorted(own)
    assert all(p.node == host for p in report.mesh.transports.values())


@pytest.mark.parametrize("name,host", [(n, h) for n, g, h in INVENTORY_HOSTS if g == "sam_rrs"],
                         ids=["%s:%s" % (n, h) for n, g, h in INVENTORY_HOSTS if g == "sam_rrs"])
def test_inventory_rr_admits_every_leaf_claim(name, host):
    claims = leaf_claims(name)
    docs = inventory_docs(name, host) + [("leaf claims", claims)]
    report = validate_documents(docs, tokens=mesh_tokens(name), now=NOW)
    assert report.errors == [] and sev(report, WARNING) == []
    names = sorted(c["metadata"]["name"] for c in claims)
    assert sorted(report.verified) == names and active(report) == names
    assert "BGPDynamicPeer" in {r["kind"] for r in host_vars(name, host)["sam_node_resources"]}


@pytest.mark.parametrize("name,rr_file,seed", [
    ("cloudedge", "cloudedge-rr-a.yaml", "cloudedge-rr-claims-seed.yaml"),
    ("pve-minimal", "pve-minimal-rr.yaml", "pve-minimal-rr-claims-seed.yaml"),
])
def test_inventory_matches_fixtures(name, rr_file, seed):
    shared = common.load_file(str(INVENTORIES / name / "group_vars" / "all" / "sam.yml"))[0][1]["sam_resources"]
    (rrset_name, rrset), = by_kind(shared, "SAMRRSet").items()
    assert rrset["spec"] == by_kind(resources(rr_file), "SAMRRSet")[rrset_name]["spec"]
    for policy_name, policy in by_kind(shared, "SAMEnrollmentPolicy").items():
        assert "transportProfileRef" not in policy["spec"]
        assert policy["spec"]["joinTokenFrom"] == {"file": "/etc/boma/sam/join-tokens/" + policy_name}
    assert sorted(by_kind(shared, "SAMEnrollmentPolicy")) == sorted(POLICIES[name])
    # Same signed claims (and so the same joinHMAC) as the fixtures' submitted claims.
    seeded = by_kind(resources(seed), "SAMEnrollmentClaim")
    assert {c["metadata"]["name"]: c["spec"] for c in leaf_claims(name)} == {n: c["spec"] for n, c in seeded.items()}


# --------------------------------------------------------------------------- (c) runbook shapes


@pytest.mark.parametrize("name,node,peer", [("cloudedge-rr-a.yaml", "rr-a", "cloudedge-leaves"),
                                            ("cloudedge-rr-b.yaml", "rr-b", "cloudedge-leaves"),
                                            ("pve-minimal-rr.yaml", "pve-rr-a", "pve-leaves")])
def test_rr_shape(name, node, peer):
    docs = resources(name)
    kinds = {d["kind"] for d in docs}
    assert "BGPPeer" not in kinds and "SAMEnrollmentClaim" not in kinds and "WireGuardPeer" not in kinds
    dyn = by_kind(docs, "BGPDynamicPeer")[peer]["spec"]
    assert dyn["routeReflectorClient"] is True and dyn["peerASN"] == 64577
    assert (dyn["importPolicy"]["allowedPrefixLengthMin"], dyn["importPolicy"]["allowedPrefixLengthMax"]) == (32, 32)
    profiles = by_kind(docs, "SAMTransportProfile")
    assert all(p["spec"]["selfNodeRef"] == node and p["spec"]["bgp"]["generatePeers"] is False
               for p in profiles.values())
    assert {p["spec"]["mode"] for p in profiles.values()} >= {"ipip", "fou"}
    policies = {src["resource"] for p in profiles.values() for src in p["spec"]["peersFrom"]}
    assert policies == {"SAMEnrollmentPolicy/" + p for p in by_kind(docs, "SAMEnrollmentPolicy")}


def test_cloudedge_rr_runbook_values():
    for name, node, octet in (("cloudedge-rr-a.yaml", "rr-a", 2), ("cloudedge-rr-b.yaml", "rr-b", 3)):
        docs = resources(name)
        assert sorted(by_kind(docs, "SAMTransportProfile")) == sorted([node, node + "-fou", node + "-wg"])
        dyn = by_kind(docs, "BGPDynamicPeer")["cloudedge-leaves"]["spec"]
        assert dyn["listen"]["sourcePrefixes"] == ["10.255.0.0/20"]
        assert dyn["importPolicy"]["allowedPrefixes"] == ["10.77.60.0/24"]
        router = by_kind(docs, "BGPRouter")["mobility-bgp"]["spec"]
        assert (router["asn"], router["routerID"]) == (64577, "10.99.0.%d" % octet)
        wg = by_kind(docs, "WireGuardInterface")["wg-cloudedge"]["spec"]
        assert wg["peersFrom"] == [{"resource": "SAMEnrollmentPolicy/cloudedge-public-wg-leaves"}]
    members = by_kind(resources("cloudedge-rr-a.yaml"), "SAMRRSet")["cloudedge-rrs"]["spec"]["members"]
    assert [(m["nodeRef"], m["endpoint"], m["tunnelAddress"], m["wireGuard"]["endpoint"]) for m in members] == [
        ("rr-a", "10.10.0.2", "10.99.0.2/32", "203.0.113.10:51820"),
        ("rr-b", "10.10.0.3", "10.99.0.3/32", "203.0.113.11:51820")]


def test_cloudedge_rrset_is_the_same_in_every_file():
    specs = [by_kind(resources(name), "SAMRRSet")["cloudedge-rrs"]["spec"] for name in CLOUDEDGE_FILES]
    assert all(spec == specs[0] for spec in specs)


@pytest.mark.parametrize("name,leaf,mode,wireguard", [
    ("cloudedge-leaf-pve.yaml", "leaf-pve", "ipip", False),
    ("cloudedge-leaf-a-wg.yaml", "leaf-a", "ipip", True),
    ("cloudedge-leaf-b-fou.yaml", "leaf-b", "fou", False),
])
def test_cloudedge_leaf_shape(name, leaf, mode, wireguard):
    docs = resources(name)
    kinds = {d["kind"] for d in docs}
    assert "BGPPeer" not in kinds and "WireGuardPeer" not in kinds
    assert list(by_kind(docs, "SAMRRSet")) == ["cloudedge-rrs"]
    profile = by_kind(docs, "SAMTransportProfile")[leaf]["spec"]
    assert profile["peersFrom"] == [{"resource": "SAMRRSet/cloudedge-rrs"}]
    assert profile["mode"] == mode and profile["encryption"] == ("wireguard" if wireguard else "none")
    assert ("WireGuardInterface" in kinds) == wireguard
    claim = by_kind(docs, "SAMEnrollmentClaim")[leaf]["spec"]
    assert ("wireGuard" in claim) == wireguard
    if wireguard:
        wg = by_kind(docs, "WireGuardInterface")["wg-cloudedge"]["spec"]
        assert wg["peersFrom"] == [{"resource": "SAMRRSet/cloudedge-rrs"}]
    if mode == "fou":
        assert (profile["encapSport"], profile["encapDport"]) == (5555, 5555)
    else:
        assert "encapSport" not in profile and "encapDport" not in profile


def test_cloudedge_claims_carry_the_runbook_addresses():
    claims = by_kind(resources("cloudedge-rr-claims-seed.yaml"), "SAMEnrollmentClaim")
    got = {n: (c["spec"]["tunnelAddress"], c["spec"]["endpoint"], c["spec"]["mobility"]["ownedAddresses"],
               c["spec"]["bgp"]["asn"], c["spec"]["joinTimestamp"]) for n, c in claims.items()}
    ts = "2026-06-28T00:00:00Z"
    assert got == {"leaf-pve": ("10.255.0.21/32", "10.20.0.21", ["10.77.60.21/32"], 64577, ts),
                   "leaf-a": ("10.255.0.31/32", "10.20.0.31", ["10.77.60.31/32"], 64577, ts),
                   "leaf-b": ("10.255.0.32/32", "10.20.0.32", ["10.77.60.32/32"], 64577, ts)}
    wg = claims["leaf-a"]["spec"]["wireGuard"]
    assert (wg["endpoint"], wg["allowedIPs"]) == ("198.51.100.31:51820", ["10.20.0.31/32"])


@pytest.mark.parametrize("name,seed", [(n, "cloudedge-rr-claims-seed.yaml") for n in CLOUDEDGE_FILES[2:]]
                         + [(n, "pve-minimal-rr-claims-seed.yaml")
                            for n in ("pve-minimal-leaf-a-wg.yaml", "pve-minimal-leaf-b-fou.yaml")])
def test_leaf_claim_is_the_submitted_claim(name, seed):
    (claim_name, claim), = by_kind(resources(name), "SAMEnrollmentClaim").items()
    assert claim == by_kind(resources(seed), "SAMEnrollmentClaim")[claim_name]


@pytest.mark.parametrize("name,leaf", [("pve-minimal-leaf-a-wg.yaml", "pve-leaf-a"),
                                       ("pve-minimal-leaf-b-fou.yaml", "pve-leaf-b")])
def test_pve_minimal_leaf_fetches_its_rrset(name, leaf):
    docs = resources(name)
    assert by_kind(docs, "SAMRRSet") == {}
    assert by_kind(docs, "SAMEnrollmentClient")[leaf]["spec"]["claimRef"] == "SAMEnrollmentClaim/" + leaf
    assert by_kind(docs, "SAMTransportProfile")[leaf]["spec"]["peersFrom"] == [{"resource": "SAMRRSet/pve-rrs"}]
    report = validate_documents(load(name), tokens=mesh_tokens("pve-minimal"), now=NOW)
    assert [(f.resource, f.rule) for f in sev(report, INFO)] == [("SAMTransportProfile/" + leaf, "fetched-at-runtime")]


def test_pve_fetched_rrset_is_what_the_rr_serves():
    fetched = resources(FETCHED)
    assert [d["kind"] for d in fetched] == ["SAMRRSet"]
    assert fetched[0] == by_kind(resources("pve-minimal-rr.yaml"), "SAMRRSet")["pve-rrs"]
    assert [m["nodeRef"] for m in fetched[0]["spec"]["members"]] == ["pve-rr-a", "pve-rr-b"]


def test_pve_leaf_b_has_no_wireguard():
    docs = resources("pve-minimal-leaf-b-fou.yaml")
    assert not {"WireGuardInterface", "WireGuardPeer"} & {d["kind"] for d in docs}
    profile = by_kind(docs, "SAMTransportProfile")["pve-leaf-b"]["spec"]
    assert (profile["mode"], profile["encapSport"], profile["encapDport"]) == ("fou", 5555, 5555)


@pytest.mark.parametrize("name", sorted(p.name for p in ROUTERD.glob("*.yaml")))
def test_non_sam_kinds_are_loaded_and_ignored(name):
    docs = load(name)
    loaded, findings = load_resources(docs)
    assert findings == []
    report = validate_documents(docs, tokens={}, now=NOW)
    assert not [f for f in report.findings if f.resource.split("/")[0] in NON_SAM_KINDS]
    # Dropping the non-SAM resources changes no finding.
    stripped = [(src, {**doc, "spec": {"resources": [r for r in doc["spec"]["resources"]
                                                     if r["kind"] not in NON_SAM_KINDS]}}) for src, doc in docs]
    assert validate_documents(stripped, tokens={}, now=NOW).findings == report.findings
    if "seed" not in name and name != FETCHED:  # every Router config carries its interfaces and addresses
        assert {"Interface", "IPv4StaticAddress"} <= {r.kind for r in loaded}


def test_wireguard_keys_are_real_and_distinct():
    keys = []

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("wireGuard"), dict) and "publicKey" in node["wireGuard"]:
                keys.append(node["wireGuard"]["publicKey"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for path in ROUTERD.glob("*.yaml"):
        text = path.read_text()
        assert "EXAMPLE_HMAC" not in text and "_PUBLIC_KEY" not in text
        walk([doc for source, doc in load(path.name)])
    assert keys
    assert all(len(base64.b64decode(key, validate=True)) == 32 for key in keys)
    # rr-a, rr-b, leaf-a, pve-rr-a, pve-rr-b, pve-leaf-a: one key per node.
    assert len(set(keys)) == 6
