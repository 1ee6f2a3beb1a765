# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which vault secrets are missing, still CHANGEME, not listed by their policy or in the wrong form (pure).

The one copy of the rule behind three checks: the sam_rr and sam_leaf preflights (filter
``boma.mesh.vault_problems``) and the Secrets table of the preflight report (preflight/gate.py, which runs it
on the shape of the example vault).  Only dotted names leave this module, never a value: the roles fail with
these names, and an error message that quoted a value would print a secret.

Bearer tokens (the ``keys`` checked, ``api_token`` and ``admin_token``) must be at least MIN_BEARER_LENGTH
characters, and the API token (every leaf holds it) must not also be the admin token.  ``samctl serve`` refuses
the same at start-up (cli/serve.py), so a vault that passes here starts an RR.

``vault_sam`` is the vault's ``vault.sam`` mapping.  A policy's join token is ``vault.sam.join_tokens.<policy>``:
a string for a policy whose only token id is ``default`` (routerd's joinTokenFrom), or a mapping
``{token id: token}`` (spec.joinTokens, rotation; ``{default: token}`` fits a joinTokenFrom policy too).
"""

from .model import DEFAULT_TOKEN_ID

PLACEHOLDER = "CHANGEME"
PREFIX = "vault.sam."
POLICY_KIND = "SAMEnrollmentPolicy"
# 16 characters: 128 bits of a random hex token (`openssl rand -hex 16` gives 32). A bearer token is the whole
# credential, without a nonce or a lockout, so a short one is guessed online; a minimum catches "test", "secret".
MIN_BEARER_LENGTH = 16
# The two API tokens: one for the leaves (every leaf holds it), one for the admins. They must differ.
LEAF_KEY, ADMIN_KEY = "api_token", "admin_token"
# (problem kind, fail message head): the wording both roles fail with (tests/playbooks/test_role_join_tokens.py).
MESSAGES = (
    ("missing", "Set these vault entries (not CHANGEME) with `make edit-vault`: "),
    ("unlisted", "Remove these vault entries or list their token id in the SAMEnrollmentPolicy spec.joinTokens: "),
    ("form", "Make these vault entries a mapping {token id: token} (their policy lists spec.joinTokens): "),
    ("short", "Make these vault entries at least %d characters long (a random token, for example "
              "`openssl rand -hex 16`): " % MIN_BEARER_LENGTH),
    ("same", "Give these vault entries different values (one token for leaves and admins makes every leaf an "
             "admin): "),
)


def unset(value):
    """Absent, empty or still the placeholder; any falsy value counts as absent (Jinja's default(x, true))."""
    return not value or str(value).strip() in ("", PLACEHOLDER)


def string_form(ids):
    """Whether a policy with these token ids takes the string form (its only id is default)."""
    return list(ids) == [DEFAULT_TOKEN_ID]


def entry_name(policy, token_id=None):
    """Dotted vault name of a policy's join token entry, or of one id inside its mapping."""
    base = "%sjoin_tokens.%s" % (PREFIX, policy)
    return base if token_id is None else "%s.%s" % (base, token_id)


def token_problems(policy, value, ids):
    """(missing, unlisted, form) names of one policy's vault entry ``value`` against its token ``ids``."""
    if isinstance(value, dict):
        missing = [entry_name(policy, t) for t in ids if unset(value.get(t))]
        return missing, [entry_name(policy, t) for t in value if str(t) not in ids], []
    if string_form(ids):
        return ([entry_name(policy)] if unset(value) else []), [], []
    # A string cannot hold several tokens; an absent or placeholder one names every id that needs a value.
    if value is None or str(value).strip() in ("", PLACEHOLDER):
        return [entry_name(policy, t) for t in ids], [], []
    return [], [], [entry_name(policy)]


def token_ids(doc):
    """A policy document's token ids: its spec.joinTokens ids, else [default] (joinTokenFrom or unsigned)."""
    tokens = _spec(doc).get("joinTokens")
    if tokens is None:
        return [DEFAULT_TOKEN_ID]
    return [str(t.get("id")) if isinstance(t, dict) else "" for t in tokens]


def _spec(doc):
    spec = doc.get("spec")
    return spec if isinstance(spec, dict) else {}


def _policies(documents):
    return [d for d in documents or () if isinstance(d, dict) and d.get("kind") == POLICY_KIND]


def _name(doc):
    metadata = doc.get("metadata")
    return str(metadata.get("name")) if isinstance(metadata, dict) else ""


def policy_ids(documents, policies=None):
    """[(policy name, ids)] the vault is checked against.

    Without ``policies``: every policy document with spec.joinTokens or a joinTokenFrom.file, in document order
    (the tokens sam_rr installs; env-sourced tokens are the operator's).  With ``policies`` (names): those
    policies whatever their token source (a leaf signs with its token); a name without a document gets ids None,
    so that its vault entry is checked against its own ids.
    """
    docs = _policies(documents)
    if policies is None:
        out = []
        for doc in docs:
            source = _spec(doc).get("joinTokenFrom")
            if _spec(doc).get("joinTokens") is not None or (isinstance(source, dict) and "file" in source):
                out.append((_name(doc), token_ids(doc)))
        return out
    by_name = {}
    for doc in docs:
        by_name.setdefault(_name(doc), doc)   # the first document of a name wins, as the roles read them
    # An empty id list (joinTokens: [], invalid anyway) is treated as unknown too, as sam_leaf always did.
    return [(str(p), (token_ids(by_name[str(p)]) if str(p) in by_name else None) or None) for p in policies]


def _trimmed(value):
    return str(value).strip()


def bearer_problems(sam, keys):
    """(short, same) names among ``keys`` of vault.sam: set values under the minimum, API token = admin token."""
    present = [k for k in keys if not unset(sam.get(k))]
    short = [PREFIX + str(k) for k in present if len(_trimmed(sam[k])) < MIN_BEARER_LENGTH]
    same = []
    if LEAF_KEY in present and ADMIN_KEY in present and _trimmed(sam[LEAF_KEY]) == _trimmed(sam[ADMIN_KEY]):
        same = [PREFIX + LEAF_KEY, PREFIX + ADMIN_KEY]
    return short, same


def check(vault_sam, keys=(), checked=()):
    """{missing, unlisted, form, short, same, message}: ``keys`` of vault.sam that need a value (bearer tokens),
    ``checked`` [(policy, ids)].

    ids None (the policy document is unknown): the vault entry's own ids, or [default] for a string.
    """
    sam = vault_sam if isinstance(vault_sam, dict) else {}
    tokens = sam.get("join_tokens") or {}
    tokens = tokens if isinstance(tokens, dict) else {}
    out = {"missing": [PREFIX + str(k) for k in keys if unset(sam.get(k))], "unlisted": [], "form": []}
    for policy, listed in checked:
        value = tokens.get(policy)
        ids = listed
        if ids is None:
            ids = [str(t) for t in value] if isinstance(value, dict) and value else [DEFAULT_TOKEN_ID]
        for kind, names in zip(("missing", "unlisted", "form"), token_problems(policy, value, ids)):
            out[kind] += names
    out["short"], out["same"] = bearer_problems(sam, keys)
    out["message"] = message(out)
    return out


def vault_problems(vault_sam, documents=(), keys=(), policies=None):
    """check() of ``vault_sam`` against the policies of ``documents`` (see policy_ids for ``policies``)."""
    return check(vault_sam, keys, policy_ids(documents, policies))


def message(problems):
    """The roles' fail message: one sentence per kind of problem, names only; '' when there is none."""
    return " ".join(head + ", ".join(problems[kind]) + "." for kind, head in MESSAGES if problems[kind])
