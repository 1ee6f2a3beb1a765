# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Full Topology Gate review of an inventory as one Markdown report (pure: no I/O).

``inventory`` is a plain dict built by the edge (``cli/preflight.py`` or the sam_preflight module)::

    {"name": "cloudedge",
     "hosts": {"rr-a": {"groups": ["sam_rrs"], "vars": {merged host vars}}, ...},
     "not_read": ["group_vars/all/vault.yml", ...]}   # vault files the edge skipped

Each host's document set is ``sam_resources + sam_node_resources``, as the roles build it.  An RR holds no
claims in the inventory (leaves submit them), so its expected state adds every leaf's claim from the
inventory: the state after all leaves enrolled, validated at ``now``.  No join token is read, so HMACs are
reported as not verified, never as good.  ``vault_names`` are dotted secret names (``vault.sam.api_token``)
the report checks its secret list against; values never enter this module.
"""

import hashlib

from ..core import signing
from ..core.admission import expiry
from ..core.findings import ERROR, SKIPPED, WARNING, Finding
from ..core.materialize import MaterializeError, materialize
from ..core.model import split_ref
from ..core.render.frr import RenderError, render_frr
from ..core.validate import validate_documents
from . import markdown

RR_GROUP = "sam_rrs"
LEAF_GROUP = "sam_leaves"
# The roles' defaults/main.yml values the report needs (tests/unit/preflight/test_preflight.py keeps them equal),
# so a host that does not override a knob is described with what the role will really do.
ROLE_DEFAULTS = {
    "rr": {"sam_rr__frr_confdir": "/etc/frr", "sam_rr__frr_daemons_file": "/etc/frr/daemons",
           "sam_rr__config_dir": "/etc/boma/sam", "sam_rr__state_dir": "/var/lib/boma/sam",
           "sam_rr__lib_dir": "/opt/boma-mesh/lib", "sam_rr__bin_dir": "/usr/local/sbin",
           "sam_rr__systemd_dir": "/etc/systemd/system", "sam_rr__service_name": "boma-sam-rr",
           "sam_rr__service_manager": "systemd", "sam_rr__api_port": 8443, "sam_rr__listen_address": "0.0.0.0",
           "sam_rr__tls_cert_file": "", "sam_rr__tls_key_file": "", "sam_rr__manage_dataplane": True,
           "sam_rr__manage_bgp": True, "sam_rr__wireguard_listen_port": 51820},
    "leaf": {"sam_leaf__frr_confdir": "/etc/frr", "sam_leaf__frr_daemons_file": "/etc/frr/daemons",
             "sam_leaf__config_dir": "/etc/boma/sam", "sam_leaf__state_dir": "/var/lib/boma/sam",
             "sam_leaf__rr_scheme": "http", "sam_leaf__rr_api_port": 8443, "sam_leaf__ca_file": "",
             "sam_leaf__manage_enroll": True, "sam_leaf__manage_dataplane": True, "sam_leaf__manage_bgp": True,
             "sam_leaf__wireguard_listen_port": 51820},
}

# Every host variable the review reads (sam_preflight drops all others, e.g. a loaded vault, before the review).
REPORT_VARS = frozenset(("sam_node", "sam_resources", "sam_node_resources", "ansible_host", "base__mesh_enabled")
                        + tuple(k for knobs in ROLE_DEFAULTS.values() for k in knobs))


def preflight_report(inventory, now, vault_names=()):
    """Markdown text of the review; ``now`` is an aware datetime (claims expire against it)."""
    review = build_review(inventory, now, vault_names)
    return markdown.render(review)


def build_review(inventory, now, vault_names=()):
    """Everything the report shows, as plain data (sorted), so rendering makes no decisions."""
    hosts = inventory.get("hosts") or {}
    found = {}   # Finding -> set of host names it was found on
    claims = _leaf_claims(hosts, now)
    # RRs first (the order the runbook reviews them and site.yml deploys them), then leaves, then the rest.
    order = sorted(hosts, key=lambda h: ({"rr": 0, "leaf": 1}.get(_role(hosts[h]), 2), h))
    views = [_host_view(name, hosts[name], claims, now, found) for name in order]
    mesh = _union(views)
    findings = sorted(((f, sorted(names)) for f, names in found.items()),
                      key=lambda item: (_SEVERITY_ORDER.get(item[0].severity, 9), item[0].resource, item[0].path,
                                        item[0].rule, item[0].message))
    return {
        "name": inventory.get("name") or "inventory", "now": now, "hosts": views, "mesh": mesh,
        "findings": findings, "ok": not any(f.severity == ERROR for f, _h in findings),
        "claims": _claim_rows(mesh, now, _intents(claims)), "vault_names": sorted(set(vault_names)),
        "not_read": sorted(inventory.get("not_read") or ()),
    }


_SEVERITY_ORDER = {ERROR: 0, WARNING: 1, SKIPPED: 2}


def _role(entry):
    groups = set(entry.get("groups") or ())
    if RR_GROUP in groups and LEAF_GROUP in groups:
        return "both"
    return "rr" if RR_GROUP in groups else "leaf" if LEAF_GROUP in groups else None


def _resource_list(value):
    return [r for r in value if isinstance(r, dict)] if isinstance(value, list) else []


# The key of the stand-in signature of an intent claim: the review reads no token, so no HMAC is verified anyway.
PLACEHOLDER_KEY = b"preflight-reads-no-join-token"


def _leaf_claims(hosts, now):
    """The claims the leaves will submit: what an RR admits once every leaf enrolled.

    An intent claim (identity only, issue 18) is submitted signed by the leaf agent: here it is signed at ``now``
    with a stand-in key and a nonce derived from its name, and marked ``intent`` for the claim rows.
    """
    out = []
    for name in sorted(hosts):
        if _role(hosts[name]) == "leaf":
            host_vars = hosts[name].get("vars") or {}
            out += [_as_submitted(r, now) for r in _resource_list(host_vars.get("sam_node_resources"))
                    if r.get("kind") == "SAMEnrollmentClaim"]
    return out


def _as_submitted(doc, now):
    spec = doc.get("spec")
    if not isinstance(spec, dict) or not signing.is_intent(spec):
        return doc
    label = str((doc.get("metadata") or {}).get("name"))
    nonce = hashlib.sha256(label.encode("utf-8")).hexdigest()[:32]
    return dict(doc, spec=signing.sign_claim(spec, PLACEHOLDER_KEY, nonce, now), intent=True)


def _note(found, host, resource, path, rule, message, severity=ERROR):
    found.setdefault(Finding(resource, path, rule, message, severity), set()).add(host)


def _host_view(name, entry, leaf_claims, now, found):
    host_vars = entry.get("vars") or {}
    role = _role(entry)
    node = host_vars.get("sam_node")
    view = {"name": name, "role": role, "node": node, "groups": sorted(entry.get("groups") or ()),
            "ansible_host": host_vars.get("ansible_host"), "knobs": _knobs(role, host_vars),
            "report": None, "state": None, "frr": None, "problem": None}
    where = "host/" + name
    if role is None:
        _note(found, name, where, "groups", "host-role", "in neither %s nor %s; not reviewed" % (RR_GROUP, LEAF_GROUP),
              WARNING)
        view["problem"] = "not in a SAM group"
        return view
    if role == "both":
        _note(found, name, where, "groups", "host-role", "in both %s and %s" % (RR_GROUP, LEAF_GROUP))
        view["problem"] = "in both SAM groups"
        return view
    for key in ("sam_node", "sam_resources", "sam_node_resources"):
        if host_vars.get(key) in (None, "", []):
            _note(found, name, where, key, "required-var", "is not set for this host")
    if not isinstance(node, str) or not node:
        view["problem"] = "no sam_node"
        return view
    _materialize(view, host_vars, leaf_claims, now, found)
    return view


def _materialize(view, host_vars, leaf_claims, now, found):
    """Validate the host's documents, then materialize and render them when they are valid."""
    name, role, node = view["name"], view["role"], view["node"]
    where = "host/" + name
    own = {"sam_resources": _resource_list(host_vars.get("sam_resources")),
           "sam_node_resources": _resource_list(host_vars.get("sam_node_resources"))}
    documents = [("host_vars/" + name, own)]
    if role == "rr" and leaf_claims:
        documents.append(("claims submitted by the leaves", [{k: v for k, v in doc.items() if k != "intent"}
                                                             for doc in leaf_claims]))
    report = validate_documents(documents, now=now, intent_ok=role == "leaf")
    view["report"] = report
    for finding in report.findings:
        found.setdefault(finding, set()).add(name)
    if not report.ok:
        view["problem"] = "documents invalid; not materialized"
        return
    try:
        state = materialize(report, node)
    except MaterializeError as exc:
        for finding in exc.findings:
            found.setdefault(finding, set()).add(name)
        view["problem"] = "not materialized"
        return
    view["state"] = state
    if state["role"] != role:
        _note(found, name, where, "sam_node", "host-role",
              "is in group %s but %s materializes as %s" % (_group(role), node, state["role"]))
    try:
        view["frr"] = render_frr(state)
    except RenderError as exc:
        _note(found, name, where, "frr", "render", str(exc))


def _group(role):
    return RR_GROUP if role == "rr" else LEAF_GROUP


def _knobs(role, host_vars):
    defaults = ROLE_DEFAULTS.get(role, {})
    knobs = {key: host_vars.get(key, value) for key, value in defaults.items()}
    if "base__mesh_enabled" in host_vars:
        knobs["base__mesh_enabled"] = host_vars["base__mesh_enabled"]
    return knobs


def _union(views):
    """Policies, RRSets, profiles, claims across every host's document set (first definition wins)."""
    out = {"policies": {}, "rrsets": {}, "profiles": {}, "claims": {}}
    for view in views:
        report = view["report"]
        if report is None:
            continue
        mesh = report.mesh
        for key, items in (("policies", mesh.policies), ("rrsets", mesh.rrsets), ("claims", mesh.claims)):
            for item_name, item in items.items():
                out[key].setdefault(item_name, item)
        for profile in mesh.transports.values():
            if profile.node == view["node"]:
                out["profiles"].setdefault(profile.name, profile)
        out.setdefault("active", set()).update(c.name for cs in report.active.values() for c in cs)
    out.setdefault("active", set())
    return out


def _intents(claims):
    return {(doc.get("metadata") or {}).get("name") for doc in claims if doc.get("intent")}


def _claim_rows(mesh, now, intents=()):
    """One row per claim: policy, expiry at ``now`` and why it would not be admitted (``intents``: names)."""
    rows = []
    for name in sorted(mesh["claims"]):
        claim = mesh["claims"][name]
        policy_name = split_ref(claim.policy_ref, "SAMEnrollmentPolicy") if claim.policy_ref else None
        policy = mesh["policies"].get(policy_name) if policy_name else None
        until = expiry(policy, claim)
        state = "active" if name in mesh["active"] else "not admitted"
        if claim.revoked:
            state = "revoked"
        elif until is not None and until <= now:
            state = "expired"
        signed = bool(claim.hmac) and policy is not None and policy.token is not None
        rows.append({"name": name, "leaf": claim.leaf_id, "policy": policy_name, "expires": until,
                     "state": state, "signed": signed, "intent": name in intents})
    return rows
