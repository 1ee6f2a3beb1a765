# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Edge helper (does I/O): read the join tokens a policy names (joinTokenFrom or joinTokens) for the pure core.

Returns key bytes, or a string saying why the token is unavailable.  The
reason names the file or variable, never the value.
"""

import errno
import os

from ..core.keyring import JoinKey
from ..core.payload import SecretError, secret_key


def read_token(file=None, env=None, is_base64=False, environ=None):
    """Key bytes from a file or an environment variable, else a reason string."""
    environ = os.environ if environ is None else environ
    if file:
        path = file.strip()
        try:
            with open(path, "rb") as handle:
                raw = handle.read()
        except OSError as exc:
            why = "does not exist" if exc.errno == errno.ENOENT else (exc.strerror or "unreadable").lower()
            return "token file %s %s" % (path, why)
        source = "token file " + path
    elif env:
        name = env.strip()
        if name not in environ:
            return "environment variable %s is not set" % name
        raw = environ[name]
        source = "environment variable " + name
    else:
        return "no token source configured"
    try:
        return secret_key(raw, is_base64)
    except SecretError as exc:
        return "%s: %s" % (source, exc)


def policy_keys(policy, environ=None):
    """[keyring.JoinKey] of a policy's tokens, each read from its file or variable (or why it is unavailable)."""
    return [JoinKey(t.id, read_token(t.source.file, t.source.env, t.source.base64, environ), t.not_after)
            for t in policy.tokens]


def policy_tokens(mesh, overrides=None, environ=None):
    """{policy name: key bytes (override) | [keyring.JoinKey]} for every signed policy, overrides first."""
    overrides = overrides or {}
    out = {}
    for name, policy in mesh.policies.items():
        if name in overrides:
            out[name] = overrides[name]
        elif policy.tokens:
            out[name] = policy_keys(policy, environ)
    return out
