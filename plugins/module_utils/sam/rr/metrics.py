# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""GET /metrics: the RR's figures in the Prometheus text exposition format 0.0.4 (issue 18; docs/api.md).

Counts and times only: no claim name, token, nonce or key is ever a label, so the endpoint is unauthenticated
like GET health (docs/security.md).  Label values come from bounded sets: claim states, the submission results,
the service's own rule names (checked against ``RULE_RE`` and capped at ``MAX_RULES`` distinct values, past
which a rule counts as ``other``) and the operator's ``--peer`` URLs (without any user:password part).
"""

import math
import re
import threading
from urllib.parse import urlsplit, urlunsplit

from ..core.registry import RETIRED

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
RULE_RE = re.compile(r"^[a-z][a-z0-9-]{0,47}$")
MAX_RULES = 64
STATES = ("active", "expired", "revoked", "conflict", "retired")


class Metrics:
    """The counters the request path updates (submissions); everything else is read at scrape time."""

    def __init__(self):
        self.lock = threading.Lock()
        self.submissions = {}   # (result, rule) -> count

    def submission(self, status, rule=None):
        """Count one answered submission: accepted (2xx), refused (4xx) or unavailable (5xx), with its rule."""
        result = "accepted" if status < 300 else "refused" if status < 500 else "unavailable"
        rule = "" if result == "accepted" else rule if isinstance(rule, str) and RULE_RE.match(rule) else "other"
        with self.lock:
            if (result, rule) not in self.submissions and len(self.submissions) >= MAX_RULES:
                rule = "other"
            self.submissions[(result, rule)] = self.submissions.get((result, rule), 0) + 1

    def submission_samples(self):
        with self.lock:
            items = sorted(self.submissions.items())
        return [({"result": result, **({"rule": rule} if rule else {})}, count) for (result, rule), count in items]


def escape(value):
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def number(value):
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int):
        return str(value)
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"   # the exposition format's spelling, not Python's "inf"
    return repr(value)


def render(families):
    """Text format 0.0.4 of [(name, type, help, [(labels, value)])]: HELP and TYPE once per family."""
    lines = []
    for name, kind, help_text, samples in families:
        lines.append("# HELP %s %s" % (name, help_text.replace("\\", "\\\\").replace("\n", "\\n")))
        lines.append("# TYPE %s %s" % (name, kind))
        for labels, value in samples:
            text = ",".join('%s="%s"' % (key, escape(val)) for key, val in sorted(labels.items()))
            lines.append("%s%s %s" % (name, "{%s}" % text if text else "", number(value)))
    return ("\n".join(lines) + "\n").encode("utf-8")


def peer_label(url):
    """A --peer URL without a user:password part."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    return urlunsplit((parts.scheme, host + (":%d" % parts.port if parts.port else ""), parts.path, "", ""))


def claim_states(service):
    """{state: count} of the accepted records, taken under the service lock."""
    counts = dict.fromkeys(STATES, 0)
    now = service.clock()
    with service.lock:
        registry = service.registry
        lost = registry.conflicts(now)
        for name, record in registry.records.items():
            if record.get("revoked"):
                state = "revoked"
            elif registry.signed_with.get(name) is RETIRED:
                state = "retired"
            elif name in lost:
                state = "conflict"
            elif registry.is_active(name, now):
                state = "active"
            else:
                state = "expired"
            counts[state] += 1
    return counts


def families(service):
    out = [("boma_sam_info", "gauge", "This RR: node name (always 1).", [({"node": service.node}, 1)]),
           ("boma_sam_claims", "gauge", "Accepted claim records by state (conflict: lost an identity conflict; "
            "retired: its join token is no longer listed).",
            [({"state": state}, count) for state, count in claim_states(service).items()]),
           ("boma_sam_submissions_total", "counter", "Answered claim submissions since start by result "
            "(accepted, refused, unavailable) and rule.", service.metrics.submission_samples())]
    keys = getattr(service, "member_keys", None)
    if keys is not None:
        held, own = keys.keys(), keys.refresh()
        out.append(("boma_sam_rr_public_keys", "gauge", "WireGuard public keys of SAMRRSet members this RR serves "
                    "(own: from --wg-key-file; peer: learned through replication).",
                    [({"source": "own"}, 1 if own else 0), ({"source": "peer"}, len(held) - (1 if own else 0))]))
    reconciler = service.reconciler
    if reconciler is not None:
        out += [("boma_sam_reconcile_runs_total", "counter", "Reconcile runs since start.",
                 [({}, reconciler.runs)]),
                ("boma_sam_reconcile_failures_total", "counter", "Failed reconcile runs since start.",
                 [({}, getattr(reconciler, "failures", 0))]),
                ("boma_sam_reconcile_duration_seconds", "gauge", "Duration of the last reconcile run.",
                 [({}, getattr(reconciler, "last_duration", 0.0))]),
                ("boma_sam_reconcile_last_success_timestamp_seconds", "gauge", "Unix time of the last successful "
                 "reconcile run (0: none since start).", [({}, getattr(reconciler, "last_success", 0.0))])]
    replicator = service.replicator
    if replicator is not None:
        peers = [(peer, {"peer": peer_label(peer)}) for peer in replicator.peers]
        out += [("boma_sam_replication_backlog", "gauge", "Records and nonces queued for a push to the peer.",
                 [(label, replicator.backlog(peer)) for peer, label in peers]),
                ("boma_sam_replication_last_success_timestamp_seconds", "gauge", "Unix time of the last complete "
                 "pull from the peer (0: none since start).",
                 [(label, replicator.pulled.get(peer, 0.0)) for peer, label in peers]),
                ("boma_sam_replication_pushed_total", "counter", "Records pushed to peers since start.",
                 [({}, replicator.pushed)]),
                ("boma_sam_replication_dropped_total", "counter", "Records or nonces dropped from a push as too large "
                 "for the peer (the pull repairs them).", [({}, replicator.dropped)])]
    return out


def exposition(service):
    return render(families(service))
