import pytest
from harness import Mesh


@pytest.fixture
def mesh(tmp_path):
    return Mesh(tmp_path)


@pytest.fixture
def pair(mesh):
    """rr-a and rr-b replicating with each other over their unix sockets."""
    rr_a, rr_b = mesh.rr("rr-a", ["rr-b"]), mesh.rr("rr-b", ["rr-a"])
    rr_a.start()
    rr_b.start()
    yield rr_a, rr_b
    rr_a.stop()
    rr_b.stop()
