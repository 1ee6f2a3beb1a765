"""Fixtures for the real-daemon BGP lane: ``topo`` (per test) and ``topo_module`` (per module).

The whole directory is skipped, with the reason shown, unless we are root and FRR (bgpd) and
iproute2 are installed; ``make setup`` installs them.
"""

import os
import shutil
from pathlib import Path

import pytest

from .harness import DEFAULT_PREFIX as PREFIX
from .harness import Topology, cleanup_stale

HERE = Path(__file__).resolve().parent


def _missing_requirements():
    reasons = []
    if os.geteuid() != 0:
        reasons.append("must run as root (network namespaces, FRR daemons)")
    if not os.access("/usr/lib/frr/bgpd", os.X_OK):
        reasons.append("/usr/lib/frr/bgpd missing (apt install frr, or make setup)")
    if shutil.which("ip") is None:
        reasons.append("`ip` missing (apt install iproute2, or make setup)")
    return reasons


SKIP_REASONS = _missing_requirements()


def pytest_collection_modifyitems(config, items):
    if not SKIP_REASONS:
        return
    marker = pytest.mark.skip(reason="netns BGP tests: " + "; ".join(SKIP_REASONS))
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(marker)


def _make(request, workdir):
    cleanup_stale(PREFIX)
    topo = Topology(workdir, prefix=PREFIX)
    request.addfinalizer(topo.close)
    return topo


@pytest.fixture
def topo(request, tmp_path):
    """A fresh Topology in tmp_path, closed (daemons killed, namespaces deleted) at teardown."""
    return _make(request, tmp_path)


@pytest.fixture(scope="module")
def topo_module(request, tmp_path_factory):
    """One Topology shared by the tests of a module, closed after the module."""
    return _make(request, tmp_path_factory.mktemp("netns"))
