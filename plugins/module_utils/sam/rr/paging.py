# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pages of GET sam-enrollment-records (issue 17, class 6): bounded answers, resumed with an opaque cursor.

A page holds at most ``limit`` records (by name) and ``limit`` nonces (by policy, nonce), and stops adding
either once the page would pass wire.RECORDS_PAGE_BYTES, so it stays far below the client's MAX_RESPONSE
however many nonces the RR remembers; it always holds at least one record when any is left, so a pull
always advances.  ``next`` resumes both streams where this page stopped (null once both are done); it is
base64url JSON [last record name or null, [policy, nonce] or null] (null: that stream is done).  Every page
carries the policies' nonce horizons, so an RR that pulls also learns what its peer has forgotten.

Without ``limit`` and ``after`` the answer is the whole document in one page (``next`` null), as before paging:
for the sam_rr role, which reads the records once per run over the local socket, and for an older RR that pulls
without parameters during a rolling upgrade.  The replicator always asks for pages.
"""

import base64
import binascii
import json
import re
from urllib.parse import parse_qs

from ..core import wire
from ..core.registry import Rejection

CURSOR_RE = re.compile(r"^[A-Za-z0-9_-]{1,8192}$")
_START = ("", ("", ""))


def encode_cursor(records_after, nonces_after):
    text = json.dumps([records_after, list(nonces_after) if nonces_after is not None else None],
                      separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode("utf-8")).decode("ascii").rstrip("=")


def decode_cursor(text):
    """(records after or None, (policy, nonce) after or None); ValueError when not a cursor this RR issued."""
    if not CURSOR_RE.match(text):
        raise ValueError("not a cursor")
    try:
        value = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("utf-8"))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValueError("not a cursor") from None
    if not isinstance(value, list) or len(value) != 2:
        raise ValueError("not a cursor")
    records, nonces = value
    if records is not None and not isinstance(records, str):
        raise ValueError("not a cursor")
    if nonces is not None and not (isinstance(nonces, list) and len(nonces) == 2
                                   and all(isinstance(n, str) for n in nonces)):
        raise ValueError("not a cursor")
    return records, (tuple(nonces) if nonces is not None else None)


def parameters(query):
    """(limit, (records after, nonces after)) of a GET records query, (None, start) for everything at once;
    Rejection 400 when malformed."""
    params = parse_qs(query or "")
    if "limit" not in params and "after" not in params:
        return None, _START
    try:
        limit = int((params.get("limit") or [str(wire.RECORDS_PAGE)])[0])
    except ValueError:
        raise Rejection(400, "malformed-request", "limit: must be an integer") from None
    if not 1 <= limit <= wire.RECORDS_PAGE_MAX:
        raise Rejection(400, "malformed-request", "limit: must be between 1 and %d" % wire.RECORDS_PAGE_MAX)
    after = (params.get("after") or [None])[0]
    if after is None:
        return limit, _START
    try:
        return limit, decode_cursor(after)
    except ValueError:
        raise Rejection(400, "malformed-request", "after: is not a cursor of this API (use the last page's "
                        "\"next\")") from None


def _size(item):
    return len(json.dumps(item, sort_keys=True, separators=(",", ":")).encode("utf-8")) + 1


def _take(rows, limit, budget, at_least_one):
    """(rows that fit, bytes left, more left) of up to ``limit`` rows (``rows`` holds one more when any)."""
    taken = []
    for row in rows[:limit]:
        cost = _size(row)
        if cost > budget and (taken or not at_least_one):
            break
        taken.append(row)
        budget -= cost
    return taken, budget, len(taken) < len(rows)


def page(store, query):
    """One page of the records document (call under the store's lock)."""
    limit, (records_after, nonces_after) = parameters(query)
    if limit is None:
        return {"records": store.claims(), "nonces": store.nonces_after("", "", -1), "horizons": store.horizons(),
                "next": None}
    budget = wire.RECORDS_PAGE_BYTES
    records, nonces = [], []
    next_records = next_nonces = None
    if records_after is not None:
        records, budget, more = _take(store.claims_after(records_after, limit + 1), limit, budget, True)
        next_records = (records[-1]["name"] if records else records_after) if more else None
    if nonces_after is not None:
        nonces, budget, more = _take(store.nonces_after(nonces_after[0], nonces_after[1], limit + 1), limit, budget,
                                     not records)
        next_nonces = ((nonces[-1]["policy"], nonces[-1]["nonce"]) if nonces else nonces_after) if more else None
    done = next_records is None and next_nonces is None
    return {"records": records, "nonces": nonces, "horizons": store.horizons(),
            "next": None if done else encode_cursor(next_records, next_nonces)}
