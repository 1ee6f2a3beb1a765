"""Shared builders and fixtures: one valid dual-RR mesh (the runbook's addresses) that tests mutate, fake RRs
(rrs) and the fake NetBird agent (netbird_agent)."""

import copy
import datetime
import json
import os
import shutil
from pathlib import Path

import pytest

from boma_mesh_utils.sam.core import payload
from boma_mesh_utils.sam.core.loader import load_resources
from boma_mesh_utils.sam.core.validate import validate

TOKEN = b"example-cloudedge-join-token-not-secret"
NOW = datetime.datetime(2026, 6, 28, 1, 0, tzinfo=datetime.timezone.utc)
LEAF_A_WG_KEY = "Mk4Q9rZ1kQeR2w1c3mJbq0pQ7bZk3m9L2j4xv5Y8tHc="


def res(kind, name, spec):
    return {"apiVersion": "mobility.routerd.net/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def policy(name, audience="cloudedge-private-underlay", **extra):
    spec = {
        "rrSetRef": "SAMRRSet/cloudedge-rrs",
        "joinTokenFrom": {"file": "/nonexistent/cloudedge-join-token"},
        "joinAudience": audience,
        "allowedLeafIDs": {"pattern": "^leaf-[a-z0-9-]+$"},
        "tunnelAddressPrefixes": ["10.255.0.0/20"],
        "endpointPrefixes": ["10.20.0.0/24"],
        "mobilityPoolRefs": ["MobilityPool/cloudedge"],
        "ttl": "24h",
    }
    spec.update(extra)
    return res("SAMEnrollmentPolicy", name, spec)


def claim(name, octet, policy_name="cloudedge-private-fou-leaves", key=TOKEN, **extra):
    spec = {
        "policyRef": "SAMEnrollmentPolicy/" + policy_name,
        "rrSetRef": "SAMRRSet/cloudedge-rrs",
        "leafID": name,
        "joinAudience": "cloudedge-private-underlay",
        "joinNonce": "%s-0001" % name,
        "joinTimestamp": "2026-06-28T00:00:00Z",
        "tunnelAddress": "10.255.0.%d/32" % octet,
        "endpoint": "10.20.0.%d" % octet,
        "mobility": {"ownedAddresses": ["10.77.60.%d/32" % octet]},
        "bgp": {"asn": 64577, "routerID": "10.255.0.%d" % octet},
    }
    for dotted, value in extra.items():
        set_path(spec, dotted, value)
    if key is not None:
        spec["joinHMAC"] = payload.join_hmac(key, spec)
    return res("SAMEnrollmentClaim", name, spec)


def set_path(spec, dotted, value):
    """Set (or with DELETE remove) spec[a][b] for dotted 'a__b'."""
    parts = dotted.split("__")
    node = spec
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    if value is DELETE:
        node.pop(parts[-1], None)
    else:
        node[parts[-1]] = value


DELETE = object()


def set_fields(doc, **fields):
    for dotted, value in fields.items():
        set_path(doc["spec"], dotted, value)
    return doc


def base_mesh():
    """RR-side view: RRSet, three policies, pool, BGP router + dynamic peer, profiles, three claims."""
    wg_policy = policy("cloudedge-public-wg-leaves", audience="cloudedge-public-underlay",
                       wireGuard={"endpointPrefixes": ["198.51.100.0/24"],
                                  "allowedExtraIPPrefixes": ["10.20.0.0/24"], "persistentKeepalive": 25})
    leaf_a = claim("leaf-a", 31, "cloudedge-public-wg-leaves", key=None, joinAudience="cloudedge-public-underlay",
                   wireGuard={"publicKey": LEAF_A_WG_KEY, "endpoint": "198.51.100.31:51820",
                              "allowedIPs": ["10.20.0.31/32"]})
    leaf_a["spec"]["joinHMAC"] = payload.join_hmac(TOKEN, leaf_a["spec"])
    return [
        res("SAMRRSet", "cloudedge-rrs", {
            "enrollmentPolicyRef": "SAMEnrollmentPolicy/cloudedge-leaves",
            "mobilityPoolRefs": ["MobilityPool/cloudedge"],
            "members": [
                {"nodeRef": "rr-a", "endpoint": "10.10.0.2", "tunnelAddress": "10.99.0.2/32",
                 "bgp": {"asn": 64577, "routerID": "10.99.0.2"}},
                {"nodeRef": "rr-b", "endpoint": "10.10.0.3", "tunnelAddress": "10.99.0.3/32",
                 "bgp": {"asn": 64577, "routerID": "10.99.0.3"}},
            ]}),
        policy("cloudedge-leaves"),
        wg_policy,
        policy("cloudedge-private-fou-leaves"),
        res("MobilityPool", "cloudedge", {"prefix": "10.77.60.0/24", "groupRef": "cloudedge",
                                          "mode": "selective-address",
                                          "members": [{"nodeRef": "rr-a", "site": "dc-a", "role": "cloud"}]}),
        res("BGPRouter", "mobility-bgp", {"asn": 64577, "routerID": "10.99.0.2"}),
        res("BGPDynamicPeer", "cloudedge-leaves", {
            "routerRef": "BGPRouter/mobility-bgp", "peerASN": 64577,
            "listen": {"sourcePrefixes": ["10.255.0.0/20"]}, "routeReflectorClient": True,
            "importPolicy": {"allowedPrefixes": ["10.77.60.0/24"], "allowedPrefixLengthMin": 32,
                             "allowedPrefixLengthMax": 32}}),
        res("SAMTransportProfile", "rr-a", {
            "selfNodeRef": "rr-a", "mode": "ipip", "encryption": "none", "underlayInterface": "private-wan",
            "addressingMode": "pair-stable", "innerPrefix": "10.255.0.0/20",
            "localEndpoint": "10.10.0.2", "peersFrom": [{"resource": "SAMEnrollmentPolicy/cloudedge-leaves"}],
            "bgp": {"routerRef": "BGPRouter/mobility-bgp", "peerASN": 64577, "generatePeers": False}}),
        res("SAMTransportProfile", "rr-a-fou", {
            "selfNodeRef": "rr-a", "mode": "fou", "encryption": "none", "underlayInterface": "private-wan",
            "addressingMode": "pair-stable", "innerPrefix": "10.255.0.0/20",
            "localEndpoint": "10.10.0.2", "encapSport": 5555, "encapDport": 5555,
            "peersFrom": [{"resource": "SAMEnrollmentPolicy/cloudedge-private-fou-leaves"}],
            "bgp": {"routerRef": "BGPRouter/mobility-bgp", "peerASN": 64577, "generatePeers": False}}),
        claim("leaf-pve", 21, "cloudedge-leaves"),
        leaf_a,
        claim("leaf-b", 32),
    ]


def run(docs, tokens=None, now=NOW, **kw):
    resources, findings = load_resources([("test", docs)])
    if tokens is None:
        tokens = {"cloudedge-leaves": TOKEN, "cloudedge-public-wg-leaves": TOKEN,
                  "cloudedge-private-fou-leaves": TOKEN}
    return validate(resources, tokens=tokens, now=now, findings=findings, **kw)


def rules(report, severity="error"):
    return {f.rule for f in report.findings if f.severity == severity}


def find(docs, kind, name):
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


def resign(doc, key=TOKEN):
    doc["spec"]["joinHMAC"] = payload.join_hmac(key, doc["spec"])
    return doc


@pytest.fixture
def mesh():
    return copy.deepcopy(base_mesh())


@pytest.fixture
def rrs():
    """rrs(**kw) starts an enroll_fake.FakeRR (an RR on loopback HTTP); every one started is stopped afterwards."""
    from enroll_fake import FakeRR  # noqa: PLC0415 - only the enrollment tests need the fake's server
    started = []

    def start(**kw):
        started.append(FakeRR(**kw))
        return started[-1]

    yield start
    for rr in started:
        rr.stop()


NETBIRD_FAKE = Path(__file__).resolve().parents[1] / "fixtures" / "netbird" / "netbird"


@pytest.fixture
def netbird_agent(tmp_path, monkeypatch):
    """The fake NetBird agent (tests/fixtures/netbird/netbird) as bin/netbird on PATH: set(**state) writes its
    state file, calls() reads its call log (one {argv, env} per call), state() the state it kept. NB_SETUP_KEY is
    unset: a test sets it when it wants it."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    shutil.copy(NETBIRD_FAKE, bindir / "netbird")
    monkeypatch.setenv("PATH", "%s:%s" % (bindir, os.environ["PATH"]))
    monkeypatch.setenv("NETBIRD_FAKE_STATE", str(tmp_path / "state.json"))
    monkeypatch.setenv("NETBIRD_FAKE_LOG", str(tmp_path / "calls.jsonl"))
    monkeypatch.delenv("NB_SETUP_KEY", raising=False)

    class Agent:
        @staticmethod
        def set(**state):
            (tmp_path / "state.json").write_text(json.dumps(state))

        @staticmethod
        def calls():
            log = tmp_path / "calls.jsonl"
            return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

        @staticmethod
        def state():
            return json.loads((tmp_path / "state.json").read_text())

    return Agent
