# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The RRs' WireGuard public keys in the served RRSet (issue 18; docs/api.md, "RR keys").

This RR's key is derived from its private key file (``--wg-key-file``), re-read whenever the file changes, so a
rotated key is served without a restart.  The other RRs' keys arrive with replication: every page of
GET sam-enrollment-records carries ``rrKey`` ({node, publicKey}: the answering RR's own key), which the puller
hands to ``learn`` -- authenticated as the records are (the peer's admin token, TLS).  A learned key is checked
(a SAMRRSet member other than this RR, the base64 text of 32 bytes), kept in memory and in the store's
``rr_keys`` table, so a restart serves it before the first pull.  The held keys win over a document's
``wireGuard.publicKey`` (core/member_keys.py); a document key that differs is audited once.  No private key
material ever leaves ``public_key_of``: not in a log line, an error or an answer.
"""

import base64
import binascii
import os
import stat
import threading

from ..core import identifiers, member_keys
from ..core.fields import format_time
from .service import LOG, utcnow

SCHEMA = ("CREATE TABLE IF NOT EXISTS rr_keys "
          "(node TEXT PRIMARY KEY, public_key TEXT NOT NULL, learned_at TEXT NOT NULL)")


class KeyFileError(ValueError):
    """The private key file is unusable; the message names the file, never its content."""


def public_key_of(private_text):
    """The base64 X25519 public key of a base64 WireGuard private key (cryptography)."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey  # noqa: PLC0415 - only with a key
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat  # noqa: PLC0415

    raw = base64.b64decode(private_text, validate=True)
    public = X25519PrivateKey.from_private_bytes(raw).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(public).decode("ascii")


def read_public_key(path):
    """The public key of the private key in ``path`` (None when the file does not exist), or KeyFileError."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise KeyFileError("--wg-key-file %s: %s" % (path, exc.strerror or type(exc).__name__)) from None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError("--wg-key-file %s is mode %04o; it must not be readable by group or others (chmod 0600)"
                           % (path, stat.S_IMODE(info.st_mode)))
    try:
        with open(path, "rb") as handle:
            text = handle.read(4096).decode("ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError("--wg-key-file %s: cannot be read (%s)" % (path, type(exc).__name__)) from None
    if not member_keys.is_public_key(text):   # the same form: base64 text of 32 bytes
        raise KeyFileError("--wg-key-file %s does not hold a base64 32-byte WireGuard private key" % path)
    try:
        return public_key_of(text)
    except ImportError:
        raise KeyFileError("--wg-key-file needs the Python package cryptography") from None
    except (ValueError, binascii.Error):
        raise KeyFileError("--wg-key-file %s does not hold a usable X25519 private key" % path) from None


class MemberKeys:
    """This RR's public key and the ones learned from its peers, merged into every served RRSet."""

    def __init__(self, service, node, key_file=None):
        self.service, self.node, self.key_file = service, node, key_file
        self.lock = threading.Lock()
        self.learned = {}
        self.warned = set()
        self._own, self._stamp = None, ()
        with service.store_lock:
            service.store.db.execute(SCHEMA)
            rows = service.store.db.execute("SELECT node, public_key FROM rr_keys").fetchall()
        for peer, key in rows:
            if peer != node and member_keys.is_public_key(key):
                self.learned[peer] = key
        if key_file:
            self.refresh(strict=True)    # a bad file stops the start-up (exit 2); later ones are logged
            if self._own is None:
                LOG.warning("--wg-key-file %s does not exist yet: no WireGuard key of %s is served until it does",
                            key_file, node)

    def refresh(self, strict=False):
        """This RR's public key, re-derived when the key file changed (inode, size, mtime); the last good key is
        kept while the file is unusable.  A new key triggers the service's reconcile (``on_change``): its
        WireGuard interface takes the new private key then, not at the next claim change (issue 18)."""
        if not self.key_file:
            return None
        try:
            info = os.stat(self.key_file)
            stamp = (info.st_ino, info.st_size, info.st_mtime_ns, info.st_mode)
        except OSError:
            stamp = None
        with self.lock:
            if stamp == self._stamp:
                return self._own
            self._stamp = stamp
            try:
                key = read_public_key(self.key_file)
            except KeyFileError as exc:
                if strict:
                    raise
                LOG.error("%s; still serving the previous key", exc)
                return self._own
            rotated = key is not None and key != self._own
            if rotated:
                LOG.info("WireGuard public key of %s: %s (from --wg-key-file)", self.node, key)
                self._own = key
            own = self._own
        if rotated and not strict:
            self.service.on_change()
        return own

    def keys(self):
        """{nodeRef: public key} this RR serves: the learned ones and its own."""
        own = self.refresh()
        with self.lock:
            found = dict(self.learned)
        if own:
            found[self.node] = own
        return found

    def advert(self):
        """``rrKey`` of a records page: this RR's node and public key, or None without a key."""
        own = self.refresh()
        return {"node": self.node, "publicKey": own} if own else None

    def learn(self, entry):
        """Take a peer's ``rrKey`` after checking it; True when a key changed.  Never raises on bad input."""
        if entry is None:
            return False
        node = entry.get("node") if isinstance(entry, dict) else None
        key = entry.get("publicKey") if isinstance(entry, dict) else None
        problem = None
        if not isinstance(node, str) or not identifiers.is_identifier(node):
            problem = "rrKey.node is not a node name"
        elif node == self.node:
            problem = "rrKey.node is this RR (%s): its own key comes from --wg-key-file only" % self.node
        elif node not in member_keys.member_nodes(d.spec for d in self.service.registry.rrset_docs.values()):
            problem = "rrKey.node %s is not a member of a SAMRRSet this RR serves" % node
        elif not member_keys.is_public_key(key):
            problem = "rrKey.publicKey of %s is not the base64 text of 32 bytes" % node
        if problem:
            if problem not in self.warned:
                self.warned.add(problem)
                LOG.warning("a peer's WireGuard key was refused: %s", problem)
            return False
        with self.lock:
            if self.learned.get(node) == key:
                return False
            self.learned[node] = key
        with self.service.store_lock:
            self.service.store.db.execute("INSERT OR REPLACE INTO rr_keys VALUES (?, ?, ?)",
                                          (node, key, format_time(utcnow())))
        LOG.info("WireGuard public key of %s: %s (learned from a peer)", node, key)
        return True

    def merge(self, rrset, spec):
        """The served copy of a SAMRRSet spec: the held keys in, a differing document key audited once."""
        keys = self.keys()
        differ = member_keys.mismatches(spec, keys)
        if differ:
            self.service._audit_once("rr-key-mismatch", {   # noqa: SLF001 - the service's once-per-reason audit
                "SAMRRSet/%s.members[%s]" % (rrset, node): "the document's wireGuard.publicKey %s differs from the key "
                "%s holds, %s; serving the held key (update or drop the document's)"
                % (written[:60], node, keys[node]) for node, written in differ.items()})
        return member_keys.with_member_keys(spec, keys)
