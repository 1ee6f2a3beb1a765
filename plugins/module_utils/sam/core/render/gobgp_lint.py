# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What gobgpd accepts silently and then runs open: the semantic lint of a gobgpd TOML candidate (issue 20).

``gobgpd -d`` checks that the file parses into its configuration; it does not check what a policy means.  gobgpd
3.10 drops a whole policy it cannot install (an unknown ``set-next-hop`` keyword, a statement naming a set that
is not defined) and then imports with the default policy, and it takes an empty prefix or neighbor set as "match
anything".  So before anything is loaded, ``lint_gobgp(text, role)`` says which of these a candidate holds:

- the global policy: an RR imports through named, defined policies with ``default-import-policy =
  "reject-route"``; a leaf exports the same way (``default-export-policy = "reject-route"``) unless
  ``export_any`` (tests only) is asked for;
- every statement's sets are defined and not empty, its ``match-set-options`` and ``route-disposition`` are
  words gobgpd knows, ``set-next-hop`` is ``self``, ``unchanged`` or an IPv4 address, and a
  ``masklength-range`` is ``low..high`` within 0..32 around its prefix;
- an accept statement on an RR is bound to a neighbor set (a prefix set alone would admit the prefix from any
  leaf).

``policy_view(text)`` is what a reload changes for the sessions (the sets and whether the node is an RR), from
which ``reset_commands`` says which ``gobgp`` resets must follow.  Pure: stdlib only (tomllib, Python 3.11+).
"""

import ipaddress
import re

from ..memo import Memo

try:
    import tomllib
except ImportError:   # Python < 3.11: the lint fails closed (it says why) instead of passing unread text
    tomllib = None

DISPOSITIONS = ("accept-route", "reject-route")
SET_OPTIONS = ("any", "all", "invert")
NEXT_HOP_WORDS = ("self", "unchanged")
_MASK_RANGE = re.compile(r"^(\d{1,2})\.\.(\d{1,2})$")


# text -> (document, problems): one apply reads the candidate and the file it replaces several times (lint, the
# read-back, the resets, the originated /32s), and an RR's file with thousands of leaves takes long to parse.  The
# documents are only read, never changed, so a hit is shared.
_PARSED = Memo(limit=4, max_bytes=64 << 20)


def parse(text):
    """(TOML document, [] or [problem]) for a candidate; the document is None when it is not TOML."""
    hit = _PARSED.get(text) if isinstance(text, str) else None
    if hit is None:
        hit = _parse(text)
        if isinstance(text, str):
            _PARSED.put(text, hit, len(text))
    return hit[0], list(hit[1])     # a list of its own: lint_gobgp appends to it


def _parse(text):
    if tomllib is None:
        return None, ("gobgpd candidate: reading TOML needs Python 3.11 (tomllib); nothing was checked",)
    try:
        return tomllib.loads(text), ()
    except (tomllib.TOMLDecodeError, TypeError) as exc:
        return None, ("gobgpd candidate is not TOML: %s" % exc,)


def lint_gobgp(text, role, export_any=False):
    """Problems (strings naming the table and key) of a gobgpd candidate for a node of ``role`` (rr or leaf)."""
    doc, problems = parse(text)
    if doc is None:
        return problems
    sets = _sets(doc, problems)
    policies = _policies(doc, sets, role, problems)
    config = ((doc.get("global") or {}).get("apply-policy") or {}).get("config") or {}
    if role == "rr":
        _global_policy(config, "import", policies, problems)
    elif not export_any:
        _global_policy(config, "export", policies, problems)
    return problems


def _sets(doc, problems):
    """{("prefix"|"neighbor", name)} of the defined, non-empty sets."""
    defined = (doc.get("defined-sets") or {})
    out = set()
    for index, entry in enumerate(defined.get("prefix-sets") or ()):
        where = "defined-sets.prefix-sets[%d]" % index
        name, items = entry.get("prefix-set-name"), entry.get("prefix-list") or []
        if not items:
            problems.append("%s %s: an empty prefix set matches every prefix in gobgpd" % (where, name))
            continue
        for item_index, item in enumerate(items):
            _prefix_item(item, "%s.prefix-list[%d]" % (where, item_index), problems)
        out.add(("prefix", name))
    for index, entry in enumerate(defined.get("neighbor-sets") or ()):
        where = "defined-sets.neighbor-sets[%d]" % index
        name, items = entry.get("neighbor-set-name"), entry.get("neighbor-info-list") or []
        if not items:
            problems.append("%s %s: an empty neighbor set matches every neighbor in gobgpd" % (where, name))
            continue
        for item in items:
            if not _is_prefix(item):
                problems.append("%s %s: %r is not an IPv4 address or prefix" % (where, name, item))
        out.add(("neighbor", name))
    return out


def _prefix_item(item, where, problems):
    prefix = item.get("ip-prefix")
    if not _is_prefix(prefix):
        problems.append("%s ip-prefix: %r is not an IPv4 prefix" % (where, prefix))
        return
    mask = item.get("masklength-range")
    if mask is None:
        return
    match = _MASK_RANGE.match(str(mask))
    length = ipaddress.IPv4Network(prefix).prefixlen
    if not match or not length <= int(match.group(1)) <= int(match.group(2)) <= 32:
        problems.append("%s masklength-range: %r is not low..high with %d <= low <= high <= 32" % (where, mask, length))


def _policies(doc, sets, role, problems):
    """Names of the policy definitions; a problem per statement gobgpd would drop or run open."""
    names = set()
    for index, policy in enumerate(doc.get("policy-definitions") or ()):
        name = policy.get("name")
        names.add(name)
        for s_index, statement in enumerate(policy.get("statements") or ()):
            where = "policy-definitions[%d] %s statements[%d] %s" % (index, name, s_index, statement.get("name"))
            _statement(statement, sets, role, where, problems)
    return names


def _statement(statement, sets, role, where, problems):
    conditions = statement.get("conditions") or {}
    bound = False
    for kind in ("prefix", "neighbor"):
        match = conditions.get("match-%s-set" % kind)
        if match is None:
            continue
        set_name = match.get("%s-set" % kind)
        if (kind, set_name) not in sets:
            problems.append("%s: %s set %r is not defined (or empty): gobgpd drops the whole policy"
                            % (where, kind, set_name))
        if match.get("match-set-options", "any") not in SET_OPTIONS:
            problems.append("%s: match-set-options %r is not one of %s" % (where, match.get("match-set-options"),
                                                                           ", ".join(SET_OPTIONS)))
        bound = bound or kind == "neighbor"
    actions = statement.get("actions") or {}
    disposition = actions.get("route-disposition")
    if disposition not in DISPOSITIONS:
        problems.append("%s: route-disposition %r is not one of %s" % (where, disposition, ", ".join(DISPOSITIONS)))
    if disposition == "accept-route" and role == "rr" and not bound:
        problems.append("%s: an RR's accept statement must match a neighbor set (else any leaf may announce it)"
                        % where)
    hop = (actions.get("bgp-actions") or {}).get("set-next-hop")
    if hop is not None and hop not in NEXT_HOP_WORDS and not is_address(hop):
        problems.append("%s: set-next-hop %r is neither %s nor an IPv4 address: gobgpd drops the whole policy"
                        % (where, hop, " nor ".join(NEXT_HOP_WORDS)))


def _global_policy(config, direction, policies, problems):
    default = config.get("default-%s-policy" % direction)
    if default != "reject-route":
        problems.append('global.apply-policy.config default-%s-policy is %r, not "reject-route": what no statement '
                        "decides would pass" % (direction, default))
    listed = config.get("%s-policy-list" % direction) or []
    if not listed:
        problems.append("global.apply-policy.config %s-policy-list is empty" % direction)
    for name in listed:
        if name not in policies:
            problems.append("global.apply-policy.config %s-policy-list: policy %r is not defined" % (direction, name))


def policy_view(text):
    """("rr" or "leaf", {set name: sorted prefixes}) of a candidate gobgpd loaded; None without one (or not TOML)."""
    doc, _problems = parse(text) if text else (None, [])
    if doc is None:
        return None
    config = ((doc.get("global") or {}).get("apply-policy") or {}).get("config") or {}
    role = "rr" if config.get("import-policy-list") else "leaf"
    defined = doc.get("defined-sets") or {}
    view = {entry.get("prefix-set-name"): sorted(str(i.get("ip-prefix")) for i in entry.get("prefix-list") or ())
            for entry in defined.get("prefix-sets") or ()}
    view.update({"neighbors " + str(entry.get("neighbor-set-name")): sorted(entry.get("neighbor-info-list") or ())
                 for entry in defined.get("neighbor-sets") or ()})
    return role, view


def reset_commands(old_text, new_text, gobgp_argv):
    """The gobgp argv lists to run after gobgpd reloaded ``new_text`` in place of ``old_text``.

    The rule of render/gobgp.soft_reset_commands, from the texts: an RR whose sets changed re-runs its import
    policy (``softresetin``; no session drops); a leaf that only gained exports advertises them
    (``softresetout``); a leaf that lost one resets its sessions (gobgpd 3.10 keeps no adj-RIB-out, so
    ``softresetout`` would not withdraw it).  Nothing on first start or when no set changed.
    """
    old, new = policy_view(old_text), policy_view(new_text)
    if old is None or new is None or old == new:
        return []
    base = list(gobgp_argv) + ["neighbor", "all"]
    if "rr" in (old[0], new[0]):
        return [base + ["softresetin"]]
    exports = [p for prefixes in old[1].values() for p in prefixes]
    kept = {p for prefixes in new[1].values() for p in prefixes}
    return [base + (["reset"] if set(exports) - kept else ["softresetout"])]


def _is_prefix(value):
    try:
        ipaddress.IPv4Network(value)
        return isinstance(value, str)
    except (ValueError, TypeError):
        return False


def is_address(value):
    """An IPv4 address written as a str (gobgp's set-next-hop, a neighbor address in an argv)."""
    try:
        ipaddress.IPv4Address(value)
        return isinstance(value, str)
    except (ValueError, TypeError):
        return False
