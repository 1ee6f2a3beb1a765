# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The leaf's WireGuard key: an X25519 private key in a 0600 file (created when missing), its public key.

The private key never leaves this file: only the public key goes into the signed claim.
"""

import base64
import os

from ..apply.netlink import NetlinkConfigError, public_key_of, read_private_key
from ..apply.netlink.wireguard import CRYPTOGRAPHY_IMPORT_ERROR, HAS_CRYPTOGRAPHY

try:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
except ImportError:  # pragma: no cover - HAS_CRYPTOGRAPHY says so
    X25519PrivateKey = None


class KeyFileError(ValueError):
    """The key file cannot be read or created (the message names the file, never the key)."""


def _generate():
    key = X25519PrivateKey.generate()
    raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return base64.b64encode(raw).decode("ascii")


def load_or_create(path, create=True):
    """(private key path, public key) for ``path``; a missing file is created 0600 when ``create``."""
    if not HAS_CRYPTOGRAPHY:
        raise KeyFileError("WireGuard keys need the cryptography package: %s" % CRYPTOGRAPHY_IMPORT_ERROR)
    try:
        private = read_private_key(path)
    except NetlinkConfigError as exc:   # not a base64 32-byte key
        raise KeyFileError("%s does not hold a WireGuard private key (%s)" % (path, type(exc).__name__)) from None
    except OSError as exc:
        raise KeyFileError("%s: %s" % (path, (exc.strerror or "unreadable").lower())) from None
    if private is None:
        if not create:
            raise KeyFileError("%s: no such file" % path)
        private = _generate()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:   # another process made it meanwhile: use that one
            return load_or_create(path, create=False)
        except OSError as exc:
            raise KeyFileError("%s: cannot create: %s" % (path, (exc.strerror or "error").lower())) from None
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(private + "\n")
            handle.flush()
            os.fsync(handle.fileno())
    return path, public_key_of(private)
