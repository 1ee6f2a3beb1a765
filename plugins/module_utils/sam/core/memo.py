# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A bounded memo for the pure per-claim steps an RR repeats on every change (issue 19, docs/scale.md).

A reconcile run re-validates, re-materializes and re-renders every admitted claim although almost all of them are
as they were; the steps that cost most per claim keep their results here, keyed by everything they read.  Values
must be immutable (frozen dataclasses, tuples): a hit is shared.  Dict reads and writes are atomic, so threads
may share a memo.  At ``limit`` entries or ``max_bytes`` of keys (as the caller counts them: a claim's key is its
spec's JSON, and every submission is parsed, hostile ones too) it is emptied rather than evicted one by one: a
fleet's worth of keys fits (5,000 claims are about 3 MB), and an attacker's stream of new or large keys costs
one recomputation each, as without the memo, and never more memory than the bound.

``ByIdentity`` is the cheaper first level: a result kept for the very object it was computed from (the RR's
registry hands the reconcile the same Resource for a record that did not change), so a hit costs a dict read
instead of reading the object's content.  It holds the object itself, so its id() cannot be reused by another.
"""

import json


class Memo:
    def __init__(self, limit=50000, max_bytes=32 << 20):
        self.limit, self.max_bytes = limit, max_bytes
        self.values, self.size = {}, 0

    def get(self, key):
        """The value stored for ``key``; None for a miss, a None key or a key that cannot be hashed."""
        try:
            return None if key is None else self.values.get(key)
        except TypeError:
            return None

    def put(self, key, value, size=0):
        """Keep ``value`` for ``key`` (not for a None or unhashable key, nor one of over ``max_bytes``) and return
        it; ``size`` is what the key counts against ``max_bytes``."""
        try:
            hash(key)
        except TypeError:
            return value
        if key is None or size > self.max_bytes:
            return value
        if len(self.values) >= self.limit or self.size + size > self.max_bytes:
            self.clear()
        self.values[key] = value
        self.size += size
        return value

    def clear(self):
        self.values.clear()
        self.size = 0


def json_key(value, *scope):
    """``scope`` + the canonical JSON of ``value``: equal only for values equal in content and JSON type (1, "1"
    and True differ); None for a value JSON cannot hold (a YAML date, say), which is then computed every time."""
    try:
        return scope + (json.dumps(value, sort_keys=True, separators=(",", ":")),)
    except (TypeError, ValueError):
        return None


class ByIdentity:
    """Values by the identity of an object (which must not be changed after it is used as a key)."""

    def __init__(self, limit=50000):
        self.limit = limit
        self.values = {}

    def get(self, obj):
        hit = self.values.get(id(obj))
        return hit[1] if hit is not None and hit[0] is obj else None

    def cached(self, obj, compute):
        """The value for ``obj``, from compute(obj) the first time."""
        hit = self.get(obj)
        return self.put(obj, compute(obj)) if hit is None else hit

    def put(self, obj, value):
        if len(self.values) >= self.limit:
            self.values.clear()
        self.values[id(obj)] = (obj, value)
        return value

    def clear(self):
        self.values.clear()
