# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Preflight sections about the live test: secrets (names only), artifacts, pass/fail criteria, untested.

Paths follow the sam_rr / sam_leaf roles (roles/*/vars/main.yml) with each host's knobs, so the list is
what the roles will write, not a generic one.  Secret values are never an input here: only names and paths.
"""

from ..core import secrets as vault_rule
from ..core.fields import format_time
from .text import table

MODES = ("fou", "gre", "ipip")
ENCRYPTIONS = ("none", "wireguard")
API_KEYS = ("api_token", "admin_token")
# What an entry the example vault names holds in its shape below: preflight reads names, never a value.
NAMED = "named"
STRING_FORM = "no (the example has the string form: make it a mapping {token id: token})"


def _by_role(review, role):
    return [v for v in review["hosts"] if v["role"] == role]


def _names(views):
    return ", ".join(v["name"] for v in views) or "none"


def _wireguard_hosts(review):
    out = []
    for view in review["hosts"]:
        state = view["state"] or {"resources": []}
        if any(r["kind"] == "WireGuardPeer" for r in state["resources"]):
            out.append(view)
    return out


def _knob(view, key):
    prefix = "sam_rr__" if view["role"] == "rr" else "sam_leaf__"
    return view["knobs"].get(prefix + key)


def _join_tokens(policy):
    """The policy's tokens as (id, file, env, not_after), in its order; [] when the policy is unsigned."""
    return [(t.id, t.source.file, t.source.env, t.not_after) for t in policy.tokens]


def _rotating(tokens):
    """A policy whose vault entry must be a mapping {token id: token}: its ids are not just default (the roles'
    preflights take a string, or {default: token}, for a policy whose only token is default)."""
    return not vault_rule.string_form(t[0] for t in tokens)


def _vault_name(policy_name, token_id, rotating):
    return vault_rule.entry_name(policy_name, token_id if rotating else None)


def _token_rows(review, rrs):
    """Secrets rows of the join tokens, and {per-id vault name: the string-form name it replaces}."""
    claims = review["mesh"]["claims"].values()
    rows, superseded = [], {}
    for name, policy in sorted(review["mesh"]["policies"].items()):
        tokens = _join_tokens(policy)
        if not tokens:
            rows.append((None, "SAMEnrollmentPolicy/%s: no joinTokenFrom (claims are unsigned)" % name, "—"))
            continue
        signers = sorted({c.leaf_id for c in claims if c.policy_ref and c.policy_ref.endswith("/" + name)
                          and c.leaf_id})
        rotating = _rotating(tokens)
        for token_id, file, env, not_after in tokens:
            where = "file `%s`" % file if file else "environment `%s`" % env
            what = "join token %sof SAMEnrollmentPolicy/%s" % ("`%s` " % token_id if rotating else "", name)
            if not_after is not None:
                what += ", accepted until %s" % format_time(not_after)
            elif rotating:
                what += ", no notAfter"
            if rotating:   # the string form of the vault entry is replaced by {id: token}
                superseded[_vault_name(name, token_id, True)] = _vault_name(name, token_id, False)
            rows.append((_vault_name(name, token_id, rotating), what,
                         "%s (0600) on %s; passed to sam_enroll on %s (not written)" % (
                             where, _names(rrs), ", ".join(signers) or "no leaf")))
    return rows, superseded


def _example_shape(known, checked):
    """The example vault's vault.sam as the roles' check sees it, from its names only: each entry it names holds
    NAMED; a policy named by its string name is a string, a rotating one else a mapping of the ids it names (a
    string-form policy is looked up by its string name only, the name its row shows)."""
    sam = {key: NAMED for key in API_KEYS if vault_rule.PREFIX + key in known}
    tokens = sam["join_tokens"] = {}
    for policy, ids in checked:
        if vault_rule.entry_name(policy) in known:
            tokens[policy] = NAMED
        elif not vault_rule.string_form(ids):
            tokens[policy] = {t: NAMED for t in ids if vault_rule.entry_name(policy, t) in known}
    return sam


def _verdicts(review, known, superseded):
    """{vault name: In-example verdict} from the roles' own vault rule (core/secrets) run on the example's shape."""
    checked = [(name, [t[0] for t in _join_tokens(policy)])
               for name, policy in sorted(review["mesh"]["policies"].items()) if policy.tokens]
    problems = vault_rule.check(_example_shape(known, checked), API_KEYS, checked)
    out = {name: "**MISSING**" for name in problems["missing"]}
    # A rotating policy shown as a string: each of its per-id rows says so, instead of MISSING.
    out.update({name: STRING_FORM for name, string in superseded.items() if string in problems["form"]})
    return out


def _in_example(name, known, verdicts):
    if not name or not known:
        return "—"
    if name in known:
        return "yes"
    return verdicts.get(name, "**MISSING**")   # a name outside vault.sam (NetBird) is only looked up


def secrets(review):
    rrs, leaves = _by_role(review, "rr"), _by_role(review, "leaf")
    rows, superseded = _token_rows(review, rrs)
    rows.append(("vault.sam.api_token", "bearer token of the enrollment API",
                 "; ".join(["`%s/api-token` (0600) on %s" % (_knob(v, "config_dir"), v["name"]) for v in rrs]
                           + ["passed to sam_enroll on %s (not written)" % _names(leaves)])))
    rows.append(("vault.sam.admin_token", "admin token of the enrollment API (revoke, lease, audit)",
                 "; ".join("`%s/admin-token` (0600) on %s" % (_knob(v, "config_dir"), v["name"]) for v in rrs)))
    for view in _wireguard_hosts(review):
        rows.append((None, "WireGuard private key (generated on the host, never in the vault)",
                     "`%s/wg.key` (0600) on %s" % (_knob(view, "config_dir"), view["name"])))
    for view in rrs:
        if view["knobs"].get("sam_rr__tls_key_file"):
            rows.append((None, "TLS private key of the enrollment API (already on the host)",
                         "`%s` on %s" % (view["knobs"]["sam_rr__tls_key_file"], view["name"])))
    netbird = [v for v in review["hosts"] if v["knobs"].get("base__mesh_enabled") is True]
    rows.append(("vault.netbird.setup_key", "NetBird setup key (environment of `netbird up`, never argv)",
                 "used on %s" % _names(netbird) if netbird else
                 "not used: base__mesh_enabled is not true on any host"))
    known = set(review["vault_names"])
    verdicts = _verdicts(review, known, superseded)
    table_rows = [(("`%s`" % n) if n else "—", what, where, _in_example(n, known, verdicts))
                  for n, what, where in rows]
    out = ["Names and paths only; no value is read by preflight. Set them with `make edit-vault` and check "
           "with `make check-vault`.", ""]
    out += table(("Vault name", "Secret", "Where it goes", "In vault example"), table_rows)
    used = {n for n, _w, _p in rows if n} | set(superseded.values())
    unused = sorted(n for n in known if n not in used and n.startswith("vault.") and not n.endswith(".vault"))
    if unused:
        out += ["Vault names not used by this inventory: " + ", ".join("`%s`" % n for n in unused) + ".", ""]
    if review["not_read"]:
        out += ["Vault files not read: " + ", ".join("`%s`" % n for n in review["not_read"]) + ".", ""]
    return out


def _tunnels(view):
    state = view["state"] or {"resources": []}
    return sorted(r["metadata"]["name"] for r in state["resources"] if r["kind"] == "TunnelInterface")


def _rr_artifacts(view, review):
    k = view["knobs"]
    conf, state_dir, node = k["sam_rr__config_dir"], k["sam_rr__state_dir"], view["node"]
    out = ["`%s` (bgpd=yes)" % k["sam_rr__frr_daemons_file"]]
    if k["sam_rr__manage_bgp"]:
        out.append("`%s/frr.conf` (rendered config below, applied with frr-reload)" % k["sam_rr__frr_confdir"])
    for name, policy in sorted(review["mesh"]["policies"].items()):
        tokens = _join_tokens(policy)
        out += ["`%s` (join token %sof SAMEnrollmentPolicy/%s, 0600)" % (
            file, "`%s` " % token_id if _rotating(tokens) else "", name)
            for token_id, file, _env, _not_after in tokens if file]
    out.append("`%s/join-tokens.installed.json` (the token files the role installed, so that it removes only "
               "those of retired ids)" % conf)
    out += ["`%s/api-token`, `%s/admin-token` (0600)" % (conf, conf),
            "`%s/rr-%s.json` (the RR's documents, 0600)" % (conf, node),
            "`%s/%s.db` (claim store: accepted claims, nonces, audit)" % (state_dir, node),
            "`%s/%s.sock` (local enrollment API socket)" % (state_dir, node),
            "`%s/boma_mesh_utils.tar` and `%s/boma_mesh_utils/` (samctl code)" % ((k["sam_rr__lib_dir"],) * 2),
            "`%s/samctl`, `%s/%s` (launcher)" % (k["sam_rr__bin_dir"], k["sam_rr__bin_dir"],
                                                 k["sam_rr__service_name"])]
    if k["sam_rr__service_manager"] == "systemd":
        out.append("`%s/%s.service` (enabled, started)" % (k["sam_rr__systemd_dir"], k["sam_rr__service_name"]))
    if view in _wireguard_hosts(review) and k["sam_rr__manage_dataplane"]:
        out.append("`%s/wg.key` (WireGuard private key, 0600)" % conf)
    return out, k["sam_rr__manage_dataplane"]


def _leaf_artifacts(view, review):
    k = view["knobs"]
    out = ["`%s` (bgpd=yes)" % k["sam_leaf__frr_daemons_file"]]
    if k["sam_leaf__manage_bgp"]:
        out.append("`%s/frr.conf` (rendered config below, applied with frr-reload)" % k["sam_leaf__frr_confdir"])
    if k["sam_leaf__manage_enroll"]:
        out.append("`%s/enroll-%s.json` (fetched RRSet and lease, 0600)" % (k["sam_leaf__state_dir"], view["node"]))
    if view in _wireguard_hosts(review):
        out.append("`%s/wg.key` (WireGuard private key, 0600)" % k["sam_leaf__config_dir"])
    return out, k["sam_leaf__manage_dataplane"]


def artifacts(review):
    out = ["Files the roles write on each host (paths from the host's role knobs), and kernel state.", ""]
    for view in review["hosts"]:
        if view["role"] not in ("rr", "leaf"):
            continue
        files, dataplane = (_rr_artifacts if view["role"] == "rr" else _leaf_artifacts)(view, review)
        out += ["### %s" % view["name"], ""] + ["- " + f for f in files]
        tunnels = _tunnels(view)
        if not dataplane:
            out.append("- kernel: nothing (`*__manage_dataplane: false`)")
        elif tunnels:
            out.append("- kernel: tunnels %s with their endpoint routes" % ", ".join("`%s`" % t for t in tunnels))
        if view["role"] == "leaf" and dataplane and view["state"]:
            routers = [r for r in view["state"]["resources"] if r["kind"] == "BGPRouter"]
            owned = routers[0]["spec"]["exportPrefixes"] if routers else []
            out.append("- kernel: loopback %s" % (", ".join(owned) or "none"))
        out.append("")
    out += ["Rollback: keep the previous `frr.conf`, the previous collection checkout and, on RRs, the claim "
            "database; `systemctl restart boma-sam-rr` / `systemctl reload frr` per host.", ""]
    return out


def _leaf_transport(view, review):
    return sorted((p for p in review["mesh"]["profiles"].values() if p.node == view["node"]), key=lambda p: p.name)


def criteria(review):
    rrs, leaves = _by_role(review, "rr"), _by_role(review, "leaf")
    rr_names = _names(rrs)
    items = ["boma.mesh from this branch (collection and samctl) installed on %s" % _names(rrs + leaves)]
    for view in rrs:
        peers = sum(1 for r in (view["state"] or {"resources": []})["resources"] if r["kind"] == "BGPPeer")
        items.append("%s: no static or generated RR-side BGPPeer toward leaves (expected %d)" % (view["name"], peers))
    for view in leaves:
        for profile in _leaf_transport(view, review):
            ports = " with encap ports %s/%s" % (profile.encap_sport, profile.encap_dport) \
                if profile.mode == "fou" else ""
            crypto = "WireGuard plus %s" % profile.mode if profile.encryption == "wireguard" else \
                "%s (no WireGuard peer)" % profile.mode
            items.append("%s establishes %s transport%s toward %s (tunnels %s)" % (
                view["name"], crypto, ports, rr_names, ", ".join(_tunnels(view)) or "none"))
    for view in rrs:
        for peer in (r for r in (view["state"] or {"resources": []})["resources"] if r["kind"] == "BGPDynamicPeer"):
            admitted = peer["spec"]["admitted"]
            items.append("%s accepts BGP sessions through BGPDynamicPeer/%s from %s" % (
                view["name"], peer["metadata"]["name"],
                ", ".join("%s (%s)" % (a["leafID"], a["neighbor"]) for a in admitted) or "no admitted leaf"))
            items.append("%s learns only the authorized /32s: %s" % (view["name"], "; ".join(
                "%s → %s" % (a["leafID"], ", ".join(a["prefixes"])) for a in admitted) or "none"))
            items.append("`sam_dynamic_peer_info` on %s lists every leaf under discovered peers, mapped to its "
                         "claim, with zero rejected routes on the positive path" % view["name"])
    items += ["default routes, underlay/management prefixes and unauthorized /32 claims are not accepted",
              "BGP TCP/179 reachable over the tunnel addresses"]
    ports = sorted({(p.encap_sport, p.encap_dport) for p in review["mesh"]["profiles"].values() if p.mode == "fou"})
    items += ["UDP %s/%s permitted between the FOU leaves and %s" % (s, d, rr_names) for s, d in ports]
    if _wireguard_hosts(review):
        items.append("WireGuard UDP endpoints of the RRs reachable (UDP %s)" % ", ".join(sorted({
            str(v["knobs"].get("sam_rr__wireguard_listen_port") or v["knobs"].get("sam_leaf__wireguard_listen_port"))
            for v in rrs + leaves})))
    items += ["minimal connectivity over the authorized /32s between the test leaves and RR-side targets",
              "stopping one RR leaves every leaf connected to the other (%s), convergence time written down"
              % rr_names]
    return ["From the runbook's Full Topology Gate, with this inventory's names.", ""] + [
        "- [ ] " + item for item in items] + [""]


def _claim_items(row):
    """What the review cannot show about one claim row."""
    items = []
    if row["state"] == "expired":
        items.append("claim `%s` (%s) expired at %s: not admitted, so its tunnels, sessions and routes are not "
                     "in the RR state above" % (row["name"], row["leaf"], format_time(row["expires"])))
    elif row["state"] == "revoked":
        items.append("claim `%s` (%s) is revoked: not admitted" % (row["name"], row["leaf"]))
    elif row["state"] != "active":
        items.append("claim `%s` (%s) is not admitted (see the findings)" % (row["name"], row["leaf"]))
    if row.get("intent"):
        items.append("claim `%s` is an intent in the inventory: `samctl agent` signs it on the leaf (the RR "
                     "state above assumes it signed at the review's time)" % row["name"])
    elif not row["signed"]:
        items.append("claim `%s` is unsigned (no joinHMAC or its policy has no joinTokenFrom)" % row["name"])
    return items


def untested(review):
    now = review["now"]
    items = []
    rows = review["claims"]
    for row in rows:
        items.extend(_claim_items(row))
    signed = [r["name"] for r in rows if r["signed"] and not r.get("intent")]
    if signed:
        items.append("joinHMAC of %s not verified (preflight reads no token): run `samctl validate "
                     "--token-file POLICY=PATH`" % ", ".join("`%s`" % n for n in signed))
    active = [r for r in rows if r["state"] == "active" and r["expires"] is not None]
    if active:
        items.append("leases end %s: expiry and revocation after that are covered by unit tests only" % ", ".join(
            "%s %s" % (r["name"], format_time(r["expires"])) for r in active))
    present = {(p.mode, p.encryption) for p in review["mesh"]["profiles"].values()}
    missing = ["%s/%s" % (m, e) for m in MODES for e in ENCRYPTIONS if (m, e) not in present]
    if missing:
        items.append("transport combinations no profile here uses: " + ", ".join(missing))
    for view in review["hosts"]:
        knobs, prefix = view["knobs"], "sam_rr__" if view["role"] == "rr" else "sam_leaf__"
        for knob, what in (("manage_dataplane", "tunnels, routes and WireGuard"), ("manage_bgp", "live FRR"),
                           ("manage_enroll", "enrollment through the RRs (the static SAMRRSet is used)")):
            if knobs.get(prefix + knob) is False:
                items.append("%s: %s not applied (`%s%s: false`)" % (view["name"], what, prefix, knob))
    items += _rr_reach(review)
    items.append("provider side effects outside these hosts (firewalls, cloud routes) and the NetBird overlay")
    out = ["Derived from the documents at %s." % format_time(now), ""]
    return out + ["- " + item for item in items] + [""]


def _rr_reach(review):
    rrs = {v["node"] for v in _by_role(review, "rr")}
    partial = []
    for view in _by_role(review, "leaf"):
        state = view["state"] or {"resources": []}
        reached = {r["spec"].get("peerNodeRef") for r in state["resources"] if r["kind"] == "TunnelInterface"}
        if view["state"] and reached != rrs:
            partial.append(view["name"])
    if partial:
        return ["RR-to-RR peering is not configured, but %s do not reach every RR: routes may be incomplete"
                % ", ".join(partial)]
    return ["RR-to-RR peering: not configured and not exercised (every leaf peers with every RR: %s)"
            % ", ".join(sorted(n for n in rrs if n))]
