# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The delta between two FRR configurations rendered by render_frr, as one vtysh script (issue 19).

A claim admitted, renewed into new prefixes or revoked changes a handful of lines of the RR's configuration
(its prefix-list, its peer-group and listen range); a leaf's new RR changes one neighbour.  ``delta()``
turns the line difference between the configuration last applied and the new candidate into the commands
that make one into the other, for `vtysh -f`, and lists the objects it touches so that apply/frr.py can
read exactly those back from FRR.  It knows the shapes render_frr writes and nothing else: any other
difference (an ASN, a router-id, a peer-group setting, an unknown block) raises ``DeltaUnsupported`` and
the caller takes the whole-configuration path (frr-reload.py), which handles everything.

Order of the script: what goes away first, from the listen ranges, peer-groups and neighbours down to the
route-map entries and prefix-lists they used, then what is new from the prefix-lists up to the peer-groups,
listen ranges and neighbours.  So a new leaf's session can only come up once its admission list exists, and a
revoked one's session is gone before its list.  Pure: no I/O.
"""

import re
from dataclasses import dataclass, field

_PLIST = re.compile(r"^ip prefix-list (\S+) seq (\d+) (permit|deny) (\S+)$")
_ROUTE_MAP = re.compile(r"^route-map (\S+) (permit|deny) (\d+)$")
_ROUTER = re.compile(r"^router bgp \d+$")
_LISTEN = re.compile(r"^bgp listen range (\S+) peer-group (\S+)$")
_NEIGHBOR = re.compile(r"^neighbor (\S+) (.+)$")      # an address or a peer-group name
_ADDRESS = re.compile(r"^\d+\.\d+\.\d+\.\d+$")
_NETWORK = re.compile(r"^network (\S+)$")
_AF = "address-family ipv4 unicast"
_MATCH = re.compile(r"^(match|set) \S")
# A neighbour's defining line: removing it removes the neighbour, so it is never deleted on its own.
_DEFINING = re.compile(r"^(remote-as|peer-group|interface)\b")


class DeltaUnsupported(ValueError):
    """The difference is not one of the shapes delta() handles; the message says which line (full path)."""


@dataclass
class Parsed:
    top: list = field(default_factory=list)        # top-level single lines, in order
    maps: dict = field(default_factory=dict)       # route-map header -> [child lines]
    router: str = None                             # "router bgp ASN"
    bgp: list = field(default_factory=list)        # router-level lines, in order
    af: list = field(default_factory=list)         # address-family ipv4 unicast lines, in order
    others: list = field(default_factory=list)     # any other block: (header, [lines])
    # What delta() reads of a configuration besides its lines (line sets, neighbours, prefix-lists), computed once
    # per configuration: the one a long-running caller applied last is the next delta's start (_LAST).
    derived: dict = field(default_factory=dict, compare=False, repr=False)

    def lines(self, part):
        """The set of lines of ``part`` ("top", "bgp" or "af")."""
        return self._derive("set-" + part, lambda: set(getattr(self, part)))

    def neighbors(self):
        return self._derive("neighbors", lambda: _neighbors(self.bgp))

    def plists(self):
        return self._derive("plists", lambda: _plists(self.top))

    def _derive(self, key, compute):
        value = self.derived.get(key)
        if value is None:
            value = self.derived[key] = compute()
        return value


@dataclass
class Delta:
    script: list                                   # vtysh -f lines; empty: nothing to do
    prefix_lists: dict                             # name -> [(seq, action, prefix)] expected after ([]: gone)
    route_maps: dict                               # (name, seq) -> (action, sorted clauses) or None: gone
    listen_ranges: dict                            # (range, group) -> expected present (bool)
    neighbors: dict                                # address -> expected present (bool)
    networks: dict = field(default_factory=dict)   # prefix -> expected present (bool)
    peer_groups: dict = field(default_factory=dict)  # name -> expected present (bool)

    @property
    def empty(self):
        return not self.script

    def size(self):
        """The objects touched: what the verification reads back."""
        return (len(self.prefix_lists) + len(self.route_maps) + len(self.listen_ranges) + len(self.neighbors)
                + len(self.networks) + len(self.peer_groups))


def parse(text):
    """A rendered configuration's parts (indentation as render_frr writes it; '!' and blank lines skipped)."""
    out, where = Parsed(), {"block": None, "af": False}
    af = out.af
    for raw in text.splitlines():
        if where["af"] and raw[:2] == "  " and raw[2:3] not in ("", " ", "!"):
            af.append(raw.strip())      # most of an RR's lines: its leaves' address-family lines
            continue
        line = raw.rstrip()
        stripped = line.strip()
        if not stripped or stripped == "!":
            continue
        if line.startswith(" "):
            _parse_indented(out, where, stripped)
        else:
            _parse_top(out, where, stripped)
    return out


def _parse_top(out, where, stripped):
    where["af"] = False
    if stripped == "exit":
        where["block"] = None
    elif _ROUTE_MAP.match(stripped):
        where["block"] = out.maps.setdefault(stripped, [])
    elif _ROUTER.match(stripped):
        if out.router is not None:
            raise DeltaUnsupported("two router bgp blocks")
        out.router, where["block"] = stripped, out.bgp
    else:
        # A top-level line; a block opener render_frr never writes is followed by indented lines, which move it
        # to `others` in _parse_indented.
        out.top.append(stripped)
        where["block"] = None


def _parse_indented(out, where, stripped):
    block = where["block"]
    if block is None:
        if not out.top:
            raise DeltaUnsupported("indented line outside a block: %s" % stripped)
        out.others.append((out.top.pop(), [stripped]))
        where["block"] = out.others[-1][1]
    elif block is out.bgp and stripped == _AF:
        where["af"] = True
    elif where["af"] and stripped == "exit-address-family":
        where["af"] = False
    elif where["af"]:
        out.af.append(stripped)
    elif stripped.startswith("address-family "):
        raise DeltaUnsupported("address family %s" % stripped[len("address-family "):])
    else:
        block.append(stripped)


def _neighbors(lines):
    found = {}
    for line in lines:
        m = _NEIGHBOR.match(line)
        if m:
            found.setdefault(m.group(1), []).append(line)
    return found


def _plists(lines):
    lists = {}
    for line in lines:
        m = _PLIST.match(line)
        if m:
            lists.setdefault(m.group(1), []).append((int(m.group(2)), m.group(3), m.group(4)))
    return lists


def _map_entry(header, children):
    name, action, seq = _ROUTE_MAP.match(header).groups()
    return (name, int(seq)), (action, sorted(children))


# The last text parsed and its parts: a long-running caller's next delta starts from the candidate it just
# applied, which need not be parsed again (Parsed is only read).  One (text, Parsed) pair, replaced whole, so
# that two threads never see a text with another text's parts.
_LAST = [(None, None)]


def _parsed(text):
    last_text, last = _LAST[0]
    if last_text is not None and last_text == text:
        return last
    parsed = parse(text)
    _LAST[0] = (text, parsed)
    return parsed


def delta(old_text, new_text):
    """The Delta that turns the configuration ``old_text`` into ``new_text`` (both render_frr output)."""
    old = _parsed(old_text)
    new = _parsed(new_text)
    _check_blocks(old, new)
    # Only the neighbours named on a changed line can be gone, new or changed: a change costs what it changes,
    # not a walk over every leaf's neighbour (issue 19).
    bgp_gone, bgp_new = _changed(old, new, "bgp")
    af_gone, af_new = _changed(old, new, "af")
    top_gone, top_new = _changed(old, new, "top")
    old_nb, old_pl = old.neighbors(), old.plists()
    # new's indexes are old's with the changed lines taken out and put in (what parsing new would give)
    new_nb = new._derive("neighbors", lambda: _patched(old_nb, _neighbors(bgp_gone), _neighbors(bgp_new)))
    new.derived.setdefault("plists", _patched(old_pl, _plists(top_gone), _plists(top_new)))
    named = [m.group(1) for m in map(_NEIGHBOR.match, bgp_gone + bgp_new + af_gone + af_new) if m]
    named = list(dict.fromkeys(named))
    gone_nb = [a for a in named if a in old_nb and a not in new_nb]
    added_nb = [a for a in named if a in new_nb and a not in old_nb]
    _check_router_lines(bgp_gone + bgp_new, af_gone + af_new, old_nb, new_nb)
    gone = set(gone_nb)
    bgp_del, bgp_add = [line for line in bgp_gone if not _of(line, gone)], bgp_new
    af_del, af_add = [line for line in af_gone if not _of(line, gone)], af_new

    maps_gone = [h for h in old.maps if h not in new.maps]
    maps_new = [h for h in new.maps if h not in old.maps]
    maps_changed = [h for h in new.maps if h in old.maps and old.maps[h] != new.maps[h]]
    script = _router_removals(new.router, bgp_del, af_del, gone_nb)
    script += ["no " + h for h in maps_gone]
    # No "exit" after a route-map entry: in FRR 8.4 leaving the route-map node makes every daemon process the
    # whole route-map again, so a batch of N new entries each followed by "exit" costs O(N^2) (measured: 200 new
    # leaves on 200, 11 s of bgpd CPU with "exit", 0.2 s without).  vtysh takes a command the route-map node
    # does not know (the next entry, a prefix-list, router bgp) to the configuration node by itself.
    for header in maps_changed:
        removed = [c for c in old.maps[header] if c not in new.maps[header]]
        script += [header] + [" no " + c for c in removed] if removed else []
    new_top, old_top = set(new.top), set(old.top)
    script += ["no " + line for line in old.top if line not in new_top]
    script += [line for line in new.top if line not in old_top]
    for header in maps_changed:
        added = [c for c in new.maps[header] if c not in old.maps[header]]
        script += [header] + [" " + c for c in added] if added else []
    for header in maps_new:
        script += [header] + [" " + c for c in new.maps[header]]
    script += _router_additions(new.router, bgp_add, af_add)

    touched = {a: False for a in gone_nb}
    touched.update({a: True for a in added_nb + _changed_nb(old_nb, new_nb, named)})
    neighbors = {a: v for a, v in touched.items() if _ADDRESS.match(a)}
    groups = {a: v for a, v in touched.items() if not _ADDRESS.match(a)}
    return Delta(script, _touched_plists(old, new), _touched_maps(new, maps_gone, maps_new + maps_changed),
                 _touched_ranges(bgp_gone, bgp_new), neighbors, _touched_networks(af_gone, af_new), groups)


def _patched(index, gone, added):
    """``index`` (key -> list of items) without the items of ``gone`` and with those of ``added``; a copy."""
    out = dict(index)
    for key, items in gone.items():
        left = [item for item in out.get(key, ()) if item not in items]
        if left:
            out[key] = left
        else:
            out.pop(key, None)
    for key, items in added.items():
        out[key] = out.get(key, []) + items
    return out


def _changed(old, new, part):
    """(lines of ``part`` only in old, in old's order; lines only in new, in new's order)."""
    old_set, new_set = old.lines(part), new.lines(part)
    return ([line for line in getattr(old, part) if line not in new_set],
            [line for line in getattr(new, part) if line not in old_set])


def _check_blocks(old, new):
    if old.router != new.router:
        raise DeltaUnsupported("router bgp: %s -> %s" % (old.router, new.router))
    if old.others != new.others:
        raise DeltaUnsupported("a block render_frr does not write changed")
    for line in old.lines("top") ^ new.lines("top"):
        if not _PLIST.match(line):
            raise DeltaUnsupported("top-level line: %s" % line)
    for header in set(old.maps) & set(new.maps):
        for line in set(old.maps[header]) ^ set(new.maps[header]):
            if not _MATCH.match(line):
                raise DeltaUnsupported("route-map %s: %s" % (header, line))


def _router_removals(router, bgp_del, af_del, gone_nb):
    if not (bgp_del or af_del or gone_nb):
        return []
    script = [router]
    if af_del:
        script += [" " + _AF] + ["  no " + line for line in reversed(af_del)] + [" exit-address-family"]
    script += [" no " + line for line in reversed(bgp_del)]
    # a peer-group goes with its members, listen ranges and address-family lines
    script += [" no neighbor %s%s" % (a, "" if _ADDRESS.match(a) else " peer-group") for a in gone_nb]
    return script + ["exit"]


def _router_additions(router, bgp_add, af_add):
    if not (bgp_add or af_add):
        return []
    script = [router] + [" " + line for line in bgp_add]
    if af_add:
        script += [" " + _AF] + ["  " + line for line in af_add] + [" exit-address-family"]
    return script + ["exit"]


def _check_router_lines(bgp_changed, af_changed, old_nb, new_nb):
    for line in bgp_changed:
        m = _NEIGHBOR.match(line)
        if _LISTEN.match(line):
            continue
        if not m:
            raise DeltaUnsupported("router bgp: %s" % line)
        address, rest = m.groups()
        if address in old_nb and address in new_nb and _DEFINING.match(rest):
            raise DeltaUnsupported("router bgp: neighbour %s redefined (%s)" % (address, rest))
    for line in af_changed:
        if not (_NETWORK.match(line) or _NEIGHBOR.match(line)):
            raise DeltaUnsupported("address-family ipv4 unicast: %s" % line)


def _of(line, addresses):
    m = _NEIGHBOR.match(line)
    return bool(m) and m.group(1) in addresses


def _changed_nb(old_nb, new_nb, named):
    return [a for a in named if a in new_nb and a in old_nb and sorted(old_nb[a]) != sorted(new_nb[a])]


def _touched_plists(old, new):
    """{name: its entries in ``new``} of every prefix-list with a line added or removed."""
    changed = old.lines("top") ^ new.lines("top")
    names = {m.group(1) for m in map(_PLIST.match, changed) if m}
    old_l, new_l = old.plists(), new.plists()
    names = {n for n in names if sorted(old_l.get(n, [])) != sorted(new_l.get(n, []))}
    return {n: sorted(new_l.get(n, [])) for n in sorted(names)}


def _touched_maps(new, gone, present):
    touched = {}
    for header in gone:
        touched[_map_entry(header, [])[0]] = None
    for header in present:
        key, value = _map_entry(header, new.maps[header])
        touched[key] = value
    return touched


def _touched_ranges(gone, added):
    """{(range, group): present after} of the listen ranges on the changed router lines."""
    def ranges(lines):
        return {m.groups() for m in map(_LISTEN.match, lines) if m}
    old_r, new_r = ranges(gone), ranges(added)
    return {r: r in new_r for r in sorted(old_r ^ new_r)}


def _touched_networks(gone, added):
    def nets(lines):
        return {m.group(1) for m in map(_NETWORK.match, lines) if m}
    old_n, new_n = nets(gone), nets(added)
    return {n: n in new_n for n in sorted(old_n ^ new_n)}
