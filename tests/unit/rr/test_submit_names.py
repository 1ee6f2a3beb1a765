"""Issue 17 class 2: the submit request's claim name and the clients' name check are exactly the safe set."""

import pytest

from boma_mesh_utils.sam.core import identifiers, wire
from boma_mesh_utils.sam.core.registry import Rejection
from boma_mesh_utils.sam.io.http_client import check_name
from boma_mesh_utils.sam.rr.service import parse_submit

SAFE = ["leaf-0", "a" * 63, "Leaf_0.x-y", "0"]
UNSAFE = ["leaf 0", "leaf-0\n", " leaf-0", "leaf-0 ", "le\u0430f", "-x", "a" * 64, "x/y", "", "a\x00"]


@pytest.mark.parametrize("name", SAFE)
def test_safe_names_pass_everywhere(name):
    assert parse_submit(wire.submit_request(name, {}))[0] == name
    assert check_name(name) == name
    assert identifiers.is_identifier(name)


@pytest.mark.parametrize("name", UNSAFE)
def test_unsafe_names_are_refused_everywhere(name):
    with pytest.raises(Rejection) as exc:
        parse_submit(wire.submit_request(name, {}))
    assert (exc.value.status, exc.value.rule) == (400, "identifier")
    assert "claim.metadata.name" in exc.value.message
    with pytest.raises(ValueError):
        check_name(name)
