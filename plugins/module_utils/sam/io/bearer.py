# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The enrollment API's bearer token: header-safe text, and a module's token from an option or a file.

A module's token is registered as no_log at once, before anything can echo it.
"""

from .tokens import read_token


def bearer_token(raw):
    """The token as header text; ValueError (not quoting it) when it cannot travel in a header."""
    if isinstance(raw, (bytes, bytearray)):
        raw = bytes(raw).decode("ascii", "replace")   # non-ASCII becomes U+FFFD, refused below
    if not isinstance(raw, str) or not raw.strip():
        raise ValueError("the API token is empty")
    raw = raw.strip()
    if not all(33 <= ord(c) <= 126 for c in raw):
        raise ValueError("the API token contains characters not allowed in an HTTP header (space, control, non-ASCII)")
    return raw


def module_bearer(module, option, file_option):
    """The header-safe token; ValueError naming the option (never the value) when it is unusable."""
    raw = module.params[option]
    if raw is None:
        raw = read_token(file=module.params[file_option])
        if isinstance(raw, str):
            raise ValueError("%s [secret] %s" % (file_option, raw))
        # Registered before anything can echo it, including the header check's own errors.
        module.no_log_values.add(raw.decode("utf-8", "replace"))
    try:
        token = bearer_token(raw)
    except ValueError as exc:
        raise ValueError("%s [secret] %s" % (option, exc)) from None
    module.no_log_values.add(token)
    return token
