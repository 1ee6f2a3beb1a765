"""Kernel lane: tests that need a real Debian kernel (ipip, fou, gre, wireguard), run inside a qemu guest.

``make test-kernel`` (tools/kernel/run-tests.sh) boots Debian's kernel once and runs this whole directory
in one pytest process with ``BOMA_KERNEL_GUEST=1``; the tunnel modules are already loaded (fou does not
autoload). Anywhere else every test here is skipped, so a host pytest run never touches the host's kernel.

The guest is slow (fork+exec about 90 ms, Python imports 25-35x slower than on the host): prefer pyroute2
calls in this process to spawning ``ip``, and share setup between tests where it stays correct.
"""

import os
import subprocess
from pathlib import Path

import pytest
from pyroute2 import NetNS, netns

IN_GUEST = os.environ.get("BOMA_KERNEL_GUEST") == "1"
HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    if IN_GUEST:
        return
    marker = pytest.mark.skip(reason="kernel lane: runs only inside the qemu guest (make test-kernel)")
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(marker)


class NetnsPair:
    """Namespaces ``a`` and ``b`` joined by veth ``va`` (10.0.0.1/24) <-> ``vb`` (10.0.0.2/24).

    ``ns["a"]`` / ``ns["b"]`` are open pyroute2 handles (``IPRoute`` in that namespace).
    """

    names = ("a", "b")
    ifname = {"a": "va", "b": "vb"}
    addr = {"a": "10.0.0.1", "b": "10.0.0.2"}
    prefixlen = 24

    def __init__(self):
        self.ns = {}

    def open(self):
        for name in self.names:
            if name in netns.listnetns():  # left over by an interrupted test
                netns.remove(name)
            netns.create(name)
            self.ns[name] = NetNS(name, flags=0)
        na, nb = self.ns["a"], self.ns["b"]
        na.link("add", ifname="va", kind="veth", peer={"ifname": "vb"})
        na.link("set", index=na.link_lookup(ifname="vb")[0], net_ns_fd="b")
        for name, ipr in (("a", na), ("b", nb)):
            ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
            idx = ipr.link_lookup(ifname=self.ifname[name])[0]
            ipr.addr("add", index=idx, address=self.addr[name], prefixlen=self.prefixlen)
            ipr.link("set", index=idx, state="up")
        return self

    def close(self):
        for name in self.names:
            ipr = self.ns.pop(name, None)
            if ipr is not None:
                ipr.close()
            if name in netns.listnetns():
                netns.remove(name)  # also destroys every link (veth, tunnels) inside it

    @staticmethod
    def ping(name, address, timeout=2):
        """One ICMP echo from namespace ``name``; returns the CompletedProcess (check ``returncode``)."""
        return subprocess.run(
            ["ip", "netns", "exec", name, "ping", "-c1", "-W%d" % timeout, address],
            capture_output=True,
            text=True,
            check=False,
        )


@pytest.fixture
def netns_pair():
    """A fresh NetnsPair per test; namespaces (and all links in them) are removed afterwards."""
    pair = NetnsPair()
    try:
        yield pair.open()
    finally:
        pair.close()
