"""hypothesis: random and mutated documents give findings, never an exception."""

import copy
import datetime

from conftest import TOKEN, base_mesh
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from boma_mesh_utils.sam.core.validate import route_admission, validate_documents

BASE = base_mesh()
TOKENS = {"cloudedge-leaves": TOKEN, "cloudedge-public-wg-leaves": TOKEN, "cloudedge-private-fou-leaves": TOKEN}
NOW = datetime.datetime(2026, 6, 28, 1, 0, tzinfo=datetime.timezone.utc)

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40), st.floats(allow_nan=True),
                    st.text(max_size=30), st.sampled_from(["10.77.60.5/32", "10.255.0.1", "0.0.0.0/0", "24h", "fou",
                                                           "2026-06-28T00:00:00Z", "SAMEnrollmentPolicy/x", ""]))


def _containers(inner):
    return st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4))


values = st.recursive(scalars, _containers, max_leaves=8)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, prefix + (index,))


ALL_PATHS = [p for p in _paths(BASE) if p]


@st.composite
def mutated(draw):
    docs = copy.deepcopy(BASE)
    for _mutation in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(ALL_PATHS))
        parent = docs
        try:
            for part in path[:-1]:
                parent = parent[part]
            if draw(st.booleans()) and isinstance(parent, dict):
                parent.pop(path[-1], None)
            else:
                parent[path[-1]] = draw(values)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation reshaped this branch
    return docs


def _check(docs):
    report = validate_documents([("fuzz", docs)], tokens=TOKENS, now=NOW)
    for finding in report.findings:
        assert finding.rule and isinstance(finding.message, str)
    admit = route_admission(report).admit_route
    admit("10.255.0.32", "10.77.60.32/32")
    admit("x", "y")


@settings(max_examples=8000, deadline=None, suppress_health_check=list(HealthCheck))
@given(mutated())
def test_mutated_documents_never_raise(docs):
    _check(docs)


@settings(max_examples=2000, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.one_of(values, st.lists(st.fixed_dictionaries(
    {"kind": st.sampled_from(["SAMRRSet", "SAMEnrollmentPolicy", "SAMEnrollmentClaim", "SAMTransportProfile",
                              "BGPRouter", "BGPDynamicPeer", "MobilityPool", "Router", "Other"]),
     "metadata": st.one_of(values, st.fixed_dictionaries({"name": st.text(max_size=8)})),
     "spec": values}), max_size=6)))
def test_random_documents_never_raise(docs):
    _check(docs)
