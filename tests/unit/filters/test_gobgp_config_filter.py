"""Filter boma.mesh.gobgp_config: the text sam_gobgp renders for the same state, and a clear error for a bad one."""

import importlib

import pytest
from ansible.errors import AnsibleFilterError
from inprocess import collection_on_path
from mesh_views import node_state

from boma_mesh_utils.sam.core.render.gobgp import render_gobgp

_COLLECTION_BASE = collection_on_path()


def _filter():
    module = importlib.import_module("ansible_collections.boma.mesh.plugins.filter.gobgp_config")
    return module.FilterModule().filters()["gobgp_config"]


@pytest.mark.parametrize("node", ["rr-a", "leaf-a"])
def test_the_text_is_sam_gobgps(node):
    state = node_state("cloudedge", node)[0]
    assert _filter()(state) == render_gobgp(state)
    assert _filter()(state, connect_retry=7, listen_port=1179) == render_gobgp(
        state, {"connect_retry": 7, "listen_port": 1179})


@pytest.mark.parametrize("state, match", [
    ([], r"input \[type\] must be a materialized state"),
    ({"node": "x", "role": "spine", "resources": []}, "cannot be rendered: .*role 'spine'"),
])
def test_a_state_that_cannot_be_rendered_is_a_filter_error(state, match):
    with pytest.raises(AnsibleFilterError, match=match):
        _filter()(state)
