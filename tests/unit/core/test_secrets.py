"""core/secrets: the one vault rule of both roles' preflights and the preflight report, names only.

The roles' former Jinja (sam_rr and sam_leaf preflight, up to 0.1.0) is kept below as the oracle: on a grid of
policies and vault values, vault_problems() must return exactly what the templates returned, so moving the
rule into Python changed no role's verdict or wording.
"""

import ast
import itertools

import jinja2
import pytest

from boma_mesh_utils.sam.core import secrets

POLICY = "fou"
SECRET = "planted-secret-3b9d1e"
ADMIN_SECRET = "planted-admin-secret-7c2a40"   # never the API token: the same one is a problem

# sam_rr: vars/main.yml _sam_rr_token_policies + tasks/preflight.yml, as they were.
RR_JINJA = """
{%- set _sam_rr_token_policies = [] -%}
{%- for p in documents | selectattr('kind', 'equalto', 'SAMEnrollmentPolicy') -%}
{%- if p.spec.joinTokens is defined and p.spec.joinTokens is not none -%}
{%- set _ = _sam_rr_token_policies.append({'policy': p.metadata.name, 'listed': true,
    'ids': p.spec.joinTokens | map(attribute='id') | map('string') | list}) -%}
{%- elif (p.spec.joinTokenFrom | default({}, true)).file is defined -%}
{%- set _ = _sam_rr_token_policies.append({'policy': p.metadata.name, 'listed': false, 'ids': ['default']}) -%}
{%- endif -%}
{%- endfor -%}
{%- set missing, unlisted, form = [], [], [] -%}
{%- for key in ['api_token', 'admin_token'] -%}
{%- if (vault.sam[key] | default('CHANGEME', true) | string | trim) in ['', 'CHANGEME'] -%}
{%- set _ = missing.append('vault.sam.' ~ key) -%}{%- endif -%}{%- endfor -%}
{%- set tokens = vault.sam.join_tokens | default({}, true) -%}
{%- for p in _sam_rr_token_policies -%}
{%- set base = 'vault.sam.join_tokens.' ~ p.policy -%}
{%- set value = tokens[p.policy] | default(none) -%}
{%- if value is mapping -%}
{%- for tid in p.ids if (value[tid] | default('CHANGEME', true) | string | trim) in ['', 'CHANGEME'] -%}
{%- set _ = missing.append(base ~ '.' ~ tid) -%}{%- endfor -%}
{%- for tid in value if tid | string not in p.ids -%}
{%- set _ = unlisted.append(base ~ '.' ~ tid) -%}{%- endfor -%}
{%- elif p.ids == ['default'] -%}
{%- if (value | default('CHANGEME', true) | string | trim) in ['', 'CHANGEME'] -%}
{%- set _ = missing.append(base) -%}{%- endif -%}
{%- elif value is none or (value | string | trim) in ['', 'CHANGEME'] -%}
{%- for tid in p.ids -%}{%- set _ = missing.append(base ~ '.' ~ tid) -%}{%- endfor -%}
{%- else -%}
{%- set _ = form.append(base) -%}
{%- endif -%}
{%- endfor -%}
{{ {'missing': missing, 'unlisted': unlisted, 'form': form} }}
"""

# sam_leaf: vars/main.yml _sam_leaf_policy_doc / _token_listed / _token_ids + tasks/preflight.yml, as they were.
LEAF_JINJA = """
{%- set _sam_leaf_policy_doc = documents | selectattr('kind', 'equalto', 'SAMEnrollmentPolicy')
    | selectattr('metadata.name', 'equalto', _sam_leaf_policy) | first | default({}) -%}
{%- set _sam_leaf_token_listed = ((_sam_leaf_policy_doc.spec | default({}, true)).joinTokens
    | default(none)) is not none -%}
{%- set _sam_leaf_token_ids = _sam_leaf_policy_doc.spec.joinTokens | map(attribute='id') | map('string') | list
    if _sam_leaf_token_listed else (['default'] if _sam_leaf_policy_doc | length > 0 else []) -%}
{%- set missing, unlisted, form = [], [], [] -%}
{%- if (vault.sam.api_token | default('CHANGEME', true) | string | trim) in ['', 'CHANGEME'] -%}
{%- set _ = missing.append('vault.sam.api_token') -%}{%- endif -%}
{%- set base = 'vault.sam.join_tokens.' ~ _sam_leaf_policy -%}
{%- set value = (vault.sam.join_tokens | default({}, true))[_sam_leaf_policy] | default(none) -%}
{%- set ids = _sam_leaf_token_ids if _sam_leaf_token_ids | length > 0 else
    (value.keys() | map('string') | list if value is mapping and value | length > 0 else ['default']) -%}
{%- if value is mapping -%}
{%- for tid in ids if (value[tid] | default('CHANGEME', true) | string | trim) in ['', 'CHANGEME'] -%}
{%- set _ = missing.append(base ~ '.' ~ tid) -%}{%- endfor -%}
{%- for tid in value if tid | string not in ids -%}
{%- set _ = unlisted.append(base ~ '.' ~ tid) -%}{%- endfor -%}
{%- elif ids == ['default'] -%}
{%- if (value | default('CHANGEME', true) | string | trim) in ['', 'CHANGEME'] -%}
{%- set _ = missing.append(base) -%}{%- endif -%}
{%- elif value is none or (value | string | trim) in ['', 'CHANGEME'] -%}
{%- for tid in ids -%}{%- set _ = missing.append(base ~ '.' ~ tid) -%}{%- endfor -%}
{%- else -%}
{%- set _ = form.append(base) -%}
{%- endif -%}
{{ {'missing': missing, 'unlisted': unlisted, 'form': form} }}
"""

# Both roles' former fail_msg.
MESSAGE_JINJA = """{{ ((['Set these vault entries (not CHANGEME) with `make edit-vault`: '
     ~ p.missing | join(', ') ~ '.'] if p.missing else [])
   + (['Remove these vault entries or list their token id in the SAMEnrollmentPolicy spec.joinTokens: '
       ~ p.unlisted | join(', ') ~ '.'] if p.unlisted else [])
   + (['Make these vault entries a mapping {token id: token} (their policy lists spec.joinTokens): '
       ~ p.form | join(', ') ~ '.'] if p.form else []))
   | join(' ') }}"""

ENV = jinja2.Environment(autoescape=False)
RR, LEAF, MESSAGE = (ENV.from_string(t) for t in (RR_JINJA, LEAF_JINJA, MESSAGE_JINJA))


def _oracle(template, **context):
    return ast.literal_eval(template.render(**context))


def _policy(name, **spec):
    return {"kind": "SAMEnrollmentPolicy", "metadata": {"name": name}, "spec": spec}


def _tokens(*ids):
    return [{"id": i, "file": "/etc/boma/sam/join-tokens/%s-%s" % (POLICY, i)} for i in ids]


SOURCES = {
    "joinTokens-two": {"joinTokens": _tokens("v1", "v2")},
    "joinTokens-default": {"joinTokens": _tokens("default")},
    "joinTokens-env": {"joinTokens": [{"id": "next", "env": "SAM_NEXT"}]},
    "joinTokens-empty": {"joinTokens": []},   # invalid (validate refuses it), but the roles differed on it
    "joinTokenFrom-file": {"joinTokenFrom": {"file": "/etc/boma/sam/join-tokens/fou"}},
    "joinTokenFrom-env": {"joinTokenFrom": {"env": "SAM_JOIN_TOKEN"}},
    "unsigned": {},
    "no-document": None,
}
VALUES = {
    "absent": None, "empty": "", "changeme": "CHANGEME", "changeme-spaces": "  CHANGEME\n", "zero": 0,
    "string": SECRET, "empty-map": {}, "v1": {"v1": SECRET}, "v1-v2-changeme": {"v1": SECRET, "v2": "CHANGEME"},
    "v1-v2": {"v1": SECRET, "v2": SECRET}, "v0-v1-v2": {"v0": SECRET, "v1": SECRET, "v2": SECRET},
    "default": {"default": SECRET}, "default-blank": {"default": " "}, "int-key": {1: SECRET},
}
API = {"set": SECRET, "absent": None, "changeme": "CHANGEME", "false": False}


def _cases(source):
    """(label, documents, vault.sam) for every vault value and API token state, with one policy source."""
    for value, api in itertools.product(VALUES, ("set", "absent")):
        documents = [] if SOURCES[source] is None else [_policy(POLICY, **SOURCES[source])]
        documents.append(_policy("other", joinTokenFrom={"env": "SAM_OTHER"}))
        sam = {"api_token": API[api], "admin_token": ADMIN_SECRET if api == "set" else API[api]}
        if VALUES[value] is not None:
            sam["join_tokens"] = {POLICY: VALUES[value]}
        yield "%s/%s" % (value, api), documents, {key: item for key, item in sam.items() if item is not None}


def _problems(got):
    return {k: got[k] for k in ("missing", "unlisted", "form")}


@pytest.mark.parametrize("source", SOURCES)
def test_rr_check_is_the_former_sam_rr_jinja(source):
    for label, documents, sam in _cases(source):
        got = secrets.vault_problems(sam, documents, keys=["api_token", "admin_token"])
        assert _problems(got) == _oracle(RR, vault={"sam": sam}, documents=documents), label
        assert got["message"] == MESSAGE.render(p=got), label
        assert SECRET not in repr(got), label


@pytest.mark.parametrize("source", SOURCES)
def test_leaf_check_is_the_former_sam_leaf_jinja(source):
    for label, documents, sam in _cases(source):
        got = secrets.vault_problems(sam, documents, keys=["api_token"], policies=[POLICY])
        assert _problems(got) == _oracle(LEAF, vault={"sam": sam}, documents=documents, _sam_leaf_policy=POLICY), \
            label
        assert got["message"] == MESSAGE.render(p=got), label
        assert SECRET not in repr(got), label


@pytest.mark.parametrize("api", API)
def test_api_keys_and_odd_vault_shapes(api):
    for sam in ({"api_token": API[api]}, {"api_token": API[api], "join_tokens": "not-a-mapping"},
                {"api_token": API[api], "join_tokens": None}):
        documents = [_policy(POLICY, **SOURCES["joinTokenFrom-file"])]
        got = secrets.vault_problems(sam, documents, keys=["api_token", "admin_token"])
        assert _problems(got) == _oracle(RR, vault={"sam": sam}, documents=documents)


def test_names_and_message():
    documents = [_policy(POLICY, joinTokens=_tokens("v1", "v2"))]
    got = secrets.vault_problems({"api_token": "CHANGEME", "join_tokens": {POLICY: {"v1": SECRET, "v0": SECRET}}},
                                 documents, keys=["api_token"])
    assert got == {
        "missing": ["vault.sam.api_token", "vault.sam.join_tokens.fou.v2"],
        "unlisted": ["vault.sam.join_tokens.fou.v0"], "form": [], "short": [], "same": [],
        "message": "Set these vault entries (not CHANGEME) with `make edit-vault`: vault.sam.api_token, "
                   "vault.sam.join_tokens.fou.v2. Remove these vault entries or list their token id in the "
                   "SAMEnrollmentPolicy spec.joinTokens: vault.sam.join_tokens.fou.v0."}
    form = secrets.vault_problems({"join_tokens": {POLICY: SECRET}}, documents)
    assert form["form"] == ["vault.sam.join_tokens.fou"] and form["message"].startswith("Make these vault entries")
    assert secrets.vault_problems({"api_token": SECRET}, [], keys=["api_token"])["message"] == ""


def test_default_policy_selection_is_what_sam_rr_installs():
    documents = [_policy("a", joinTokens=_tokens("v1")), _policy("b", joinTokenFrom={"file": "/x"}),
                 _policy("c", joinTokenFrom={"env": "E"}), _policy("d"), {"kind": "SAMRRSet"}]
    assert secrets.policy_ids(documents) == [("a", ["v1"]), ("b", ["default"])]
    assert secrets.policy_ids(documents, ["c", "d", "x"]) == [("c", ["default"]), ("d", ["default"]), ("x", None)]


def test_string_form_and_entry_names():
    assert secrets.string_form(["default"]) and not secrets.string_form(["default", "v2"])
    assert secrets.entry_name("p") == "vault.sam.join_tokens.p"
    assert secrets.entry_name("p", "2026-07") == "vault.sam.join_tokens.p.2026-07"


def test_the_same_api_and_admin_token_is_a_problem_named_not_quoted():
    # Every leaf holds the API token: if it is also the admin token, every leaf is an admin.
    sam = {"api_token": SECRET, "admin_token": "  %s\n" % SECRET}   # the RR trims token files, so these are equal
    got = secrets.vault_problems(sam, [], keys=["api_token", "admin_token"])
    assert got["same"] == ["vault.sam.api_token", "vault.sam.admin_token"]
    assert got["missing"] == got["short"] == []
    assert got["message"] == ("Give these vault entries different values (one token for leaves and admins makes "
                              "every leaf an admin): vault.sam.api_token, vault.sam.admin_token.")
    assert SECRET not in repr(got)
    # A leaf checks only the API token; an unset pair is missing, not the same.
    assert secrets.vault_problems(sam, [], keys=["api_token"])["same"] == []
    unset = secrets.vault_problems({"api_token": "CHANGEME", "admin_token": "CHANGEME"}, [],
                                   keys=["api_token", "admin_token"])
    assert unset["same"] == [] and unset["missing"] == ["vault.sam.api_token", "vault.sam.admin_token"]
    assert secrets.vault_problems({"api_token": SECRET, "admin_token": ADMIN_SECRET}, [],
                                  keys=["api_token", "admin_token"])["message"] == ""


def test_bearer_tokens_shorter_than_the_minimum_are_problems_named_not_quoted():
    assert secrets.MIN_BEARER_LENGTH == 16
    short = "x" * (secrets.MIN_BEARER_LENGTH - 1)
    got = secrets.vault_problems({"api_token": " %s\n" % short, "admin_token": "y" * 16}, [],
                                 keys=["api_token", "admin_token"])
    assert got["short"] == ["vault.sam.api_token"] and got["missing"] == got["same"] == []
    assert got["message"] == ("Make these vault entries at least 16 characters long (a random token, for example "
                              "`openssl rand -hex 16`): vault.sam.api_token.")
    assert short not in got["message"]
    both = secrets.vault_problems({"api_token": short, "admin_token": short}, [], keys=["api_token", "admin_token"])
    assert both["short"] == ["vault.sam.api_token", "vault.sam.admin_token"]
    assert both["message"].startswith("Make these vault entries at least 16") and "different values" in both["message"]
    # The leaf's check holds its API token to the same bar.
    assert secrets.vault_problems({"api_token": short}, [], keys=["api_token"])["short"] == ["vault.sam.api_token"]
