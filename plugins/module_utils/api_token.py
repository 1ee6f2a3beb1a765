# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read an enrollment-API bearer token for a module from an option or a file, registered as no_log at once."""

from .sam.enroll_client import bearer_token
from .sam.tokens import read_token


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
