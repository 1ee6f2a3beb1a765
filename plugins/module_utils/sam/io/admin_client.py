# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Admin calls of the enrollment API (an edge file: network): revoke, shorten a lease, list claims, audit."""

from ..core import wire
from ..core.fields import format_time, parse_time
from .http_client import DEFAULT_TIMEOUT, ApiError, api_error, check_name, json_object, parse_endpoint, request


def _admin(endpoint, method, path, admin_token, body=None, timeout=DEFAULT_TIMEOUT, ca_file=None):
    endpoint = parse_endpoint(endpoint)
    resp = request(endpoint, method, path, admin_token, body, timeout, ca_file)
    if resp.status != 200:
        raise api_error(endpoint, resp)
    doc = json_object(resp)
    if doc is None:
        raise ApiError(resp.status, "bad-response", "the answer is not a JSON object", endpoint=endpoint)
    return doc


def revoke(endpoint, admin_token, name, reason=None, timeout=DEFAULT_TIMEOUT, ca_file=None):
    """Revoke a claim (revoking twice is fine) -> the answer ``{"revoked": true, "claimRef": ...}``."""
    body = {"name": check_name(name)}
    if reason:
        body["reason"] = reason
    return _admin(endpoint, "POST", wire.revoke_path(name), admin_token, body, timeout, ca_file)


def set_expiry(endpoint, admin_token, name, expires_at, timeout=DEFAULT_TIMEOUT, ca_file=None):
    """Shorten a claim's expiry (``expires_at`` RFC 3339 text or aware datetime) -> ``{"claimRef", "expiresAt"}``."""
    when = parse_time(expires_at)
    if when is None:
        raise ValueError("expiresAt %r is not an RFC 3339 timestamp" % (expires_at,))
    return _admin(endpoint, "POST", wire.expiry_path(check_name(name)), admin_token, {"expiresAt": format_time(when)},
                  timeout, ca_file)


def list_claims(endpoint, admin_token, timeout=DEFAULT_TIMEOUT, ca_file=None, retiring=False):
    """``{"items": [{"name", "policy", "leafID", "generation", "acceptedAt", "expiresAt", "revoked", "joinToken",
    ...}]}``; ``retiring``: only unrevoked claims signed with a retiring (notAfter) or removed join token."""
    return _admin(endpoint, "GET", wire.claims_path(retiring), admin_token, timeout=timeout, ca_file=ca_file)


def audit(endpoint, admin_token, limit=100, timeout=DEFAULT_TIMEOUT, ca_file=None):
    """``{"items": [{"at", "event", "claim", "detail"}]}``, newest first."""
    return _admin(endpoint, "GET", wire.audit_path(int(limit)), admin_token, timeout=timeout, ca_file=ca_file)
