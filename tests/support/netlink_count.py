# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Count the netlink requests apply/dataplane.py makes (issue 19: a change must not dump every object)."""

DUMPS = ("get_links", "get_addr", "get_routes")


class Counting:
    """An IPRoute that counts its requests in ``seen``: "link get", "route replace", "get_links" (a dump)...

    ``get_addr`` with an ``index`` is counted apart ("get_addr index"): on a strict-checking socket the kernel
    returns that one link's addresses, not a dump of all."""

    def __init__(self, ipr, seen):
        self._ipr, self._seen = ipr, seen

    def __getattr__(self, name):
        target = getattr(self._ipr, name)
        if name not in ("link", "addr", "route", *DUMPS):
            return target

        def call(*args, **kwargs):
            key = name if name in DUMPS else "%s %s" % (name, args[0])
            if name == "get_addr" and "index" in kwargs:
                key = "get_addr index"
            self._seen[key] = self._seen.get(key, 0) + 1
            return target(*args, **kwargs)
        return call


def count_requests(monkeypatch, dataplane, seen):
    """Make every socket apply/dataplane.py opens count into ``seen``."""
    real_open = dataplane.netlink.open_ipr
    monkeypatch.setattr(dataplane.netlink, "open_ipr", lambda *a, **k: Counting(real_open(*a, **k), seen))


def dumps(seen):
    return {key: n for key, n in seen.items() if key in DUMPS}
