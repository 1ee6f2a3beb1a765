# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Edge helper (does I/O): read join tokens named by joinTokenFrom for the pure validator.

Returns key bytes, or a string saying why the token is unavailable.  The
reason names the file or variable, never the value.
"""

import errno
import os

from .payload import SecretError, secret_key


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


def policy_tokens(mesh, overrides=None, environ=None):
    """{policy name: key bytes | reason} for every policy, overrides (name -> key bytes) first."""
    overrides = overrides or {}
    out = {}
    for name, policy in mesh.policies.items():
        if name in overrides:
            out[name] = overrides[name]
        elif policy.token is not None:
            out[name] = read_token(policy.token.file, policy.token.env, policy.token.base64, environ)
    return out
