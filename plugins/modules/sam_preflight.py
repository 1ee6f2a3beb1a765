#!/usr/bin/python
# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Ansible modules keep DOCUMENTATION, EXAMPLES and RETURN above the imports:
# ruff: noqa: E402

from __future__ import annotations

DOCUMENTATION = r"""
module: sam_preflight
short_description: Write the Full Topology Gate review of an inventory as a Markdown report
version_added: 0.1.0
description:
  - The module form of C(samctl preflight) (docs/preflight.md), for a playbook run on the controller with
    C(delegate_to=localhost) and C(run_once=true); the playbook passes every host's groups and variables
    in O(hosts) (see C(playbooks/preflight.yml)).
  - Validates each host's C(sam_resources + sam_node_resources), materializes the expected state and renders the
    FRR configuration per host, and writes one Markdown report with hosts, transport profiles, generated state,
    final configs, secrets by name only, artifacts, the pass/fail checklist and what remains untested.
  - From each host's variables only those the report needs are kept (C(sam_node), C(sam_resources),
    C(sam_node_resources), C(ansible_host), C(base__mesh_enabled) and the C(sam_rr__*) / C(sam_leaf__*) knobs
    the report shows); every other variable, a loaded vault included, is dropped before the report is built.
    No message or return value ever contains a dropped value.
  - No join token is read, so claim HMACs are reported as not verified.
author:
  - boma.mesh maintainers (@boma)
extends_documentation_fragment:
  - boma.mesh.attributes
  - boma.mesh.report_file
attributes:
  idempotent:
    support: full
    details:
      - Without O(dest) nothing is written and C(changed) is always false.
      - With O(dest) the file is rewritten only when the report differs. When O(now) is omitted the evaluation time is
        ignored in that comparison, but a claim that expired in between still makes a different report.
options:
  name:
    description:
      - The inventory name in the report title.
    type: str
    default: inventory
  hosts:
    description:
      - Every host to review, by inventory host name. Each value is a mapping with C(groups) (the host's groups,
        for example C(group_names); C(sam_rrs) and C(sam_leaves) give the role) and C(vars) (its variables,
        for example from C(hostvars)).
      - It may contain vault values when whole C(hostvars) are passed, so the option is C(no_log) (Ansible never
        logs it and the returned invocation does not show it). Passing only the variables listed above, as
        C(playbooks/preflight.yml) does, also avoids templating variables the report never reads.
    type: dict
    required: true
  dest:
    description:
      - Write the report to this path on the controller (atomically, mode C(0644)). The directory must exist.
      - The file is rewritten only when the report differs, see O(now).
      - Without it nothing is written and the report is only returned.
    type: path
  now:
    description:
      - Evaluate claim expiry at this RFC 3339 time instead of the current time.
      - The report shows this time in its C(Evaluated at) line, so a different O(now) is a different report and
        rewrites O(dest).
      - When omitted the current time is used and the evaluation time (the C(Evaluated at) line and wherever
        the report repeats it) is ignored when comparing with the existing O(dest), so a rerun is unchanged unless
        something else differs, and the file keeps the time of its last change. Claims that expired in between
        are such a difference.
    type: str
  vault_names:
    description:
      - Dotted names of the secrets the vault defines (for example C(vault.sam.api_token)), to mark a secret the
        inventory needs but the vault does not name as MISSING. Names only, never values.
    type: list
    elements: str
    default: []
  fail_on_errors:
    description:
      - Fail when a host's documents do not validate; the message lists every error finding with its resource,
        field path and rule, and the hosts it was found on. The report is still written to O(dest) first.
      - When V(false), the module succeeds and RV(valid) tells whether the inventory is valid.
    type: bool
    default: true
  return_report:
    description:
      - Return the report text in RV(report). Set V(false) to keep a large report out of the task result.
    type: bool
    default: true
seealso:
  - module: boma.mesh.sam_validate
"""

EXAMPLES = r"""
- name: Write the preflight report of this inventory next to the playbooks (playbooks/preflight.yml)
  boma.mesh.sam_preflight:
    name: "{{ inventory_dir | basename }}"
    hosts: >-
      {%- set out = {} -%}
      {%- for host in ansible_play_hosts_all -%}
      {%- set names = ['sam_node', 'sam_resources', 'sam_node_resources', 'ansible_host']
                      | select('in', hostvars[host]) | list -%}
      {%- set _ = out.update({host: {'groups': hostvars[host]['group_names'],
                                     'vars': dict(names | zip(names | map('extract', hostvars[host])))}}) -%}
      {%- endfor -%}
      {{ out }}
    dest: "{{ playbook_dir }}/../preflight-{{ inventory_dir | basename }}.md"
  delegate_to: localhost
  run_once: true

- name: Review two hand-built hosts at the planned test time, without failing
  boma.mesh.sam_preflight:
    name: lab
    hosts:
      rr-a:
        groups: [sam_rrs]
        vars:
          sam_node: rr-a
          sam_resources: "{{ lab_resources }}"
          sam_node_resources: "{{ lab_rr_a_resources }}"
    now: "2026-06-28T01:00:00Z"
    fail_on_errors: false
    return_report: false
  delegate_to: localhost
  run_once: true
  register: preflight
"""

RETURN = r"""
report:
  description: The Markdown report. When O(dest) is unchanged this is still the report computed now.
  returned: when O(return_report) is true
  type: str
  sample: "# Preflight report: cloudedge\n\nEvaluated at `2026-06-28T01:00:00Z` ..."
valid:
  description: Whether every host's documents validate (no error finding).
  returned: always
  type: bool
  sample: true
findings:
  description: Every finding of the review, errors first.
  returned: always
  type: list
  elements: dict
  contains:
    resource:
      description: The resource, as C(Kind/name), or C(host/NAME) for a host problem.
      type: str
      sample: SAMEnrollmentClaim/leaf-b
    path:
      description: The field path inside the resource.
      type: str
      sample: spec.mobility.ownedAddresses[0]
    rule:
      description: The rule that was broken.
      type: str
      sample: mobility-pool-owned
    message:
      description: What is wrong.
      type: str
      sample: 10.77.61.32/32 is outside MobilityPool/cloudedge 10.77.60.0/24
    severity:
      description: One of C(error), C(warning), C(skipped), C(info).
      type: str
      sample: error
    hosts:
      description: The hosts the finding was found on.
      type: list
      elements: str
      sample: [rr-a, rr-b]
dest:
  description: The path of the report file.
  returned: when O(dest) is given
  type: str
  sample: /srv/boma-mesh/preflight-cloudedge.md
"""

import datetime
import os
import re
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.boma.mesh.plugins.module_utils.sam.core.fields import parse_time
from ansible_collections.boma.mesh.plugins.module_utils.sam.core.findings import ERROR
from ansible_collections.boma.mesh.plugins.module_utils.sam.preflight.markdown import render
from ansible_collections.boma.mesh.plugins.module_utils.sam.preflight.review import REPORT_VARS, build_review

TIME_LINE = re.compile(r"^Evaluated at `([^`\n]+)`", re.MULTILINE)
# Dropped variables whose string values are also masked in any output (a second line of defence: dropped
# values never reach the report or the result by construction).
SECRET_NAME = re.compile(r"vault|token|secret|passw|key|credential", re.IGNORECASE)


class InputError(Exception):
    """A module option problem; the message names the option and never quotes a variable's value."""


def _strings(value):
    if isinstance(value, str):
        if value:
            yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)


def select_hosts(hosts):
    """(the preflight inventory hosts with only REPORT_VARS, the string values of dropped secret-like variables)."""
    kept, secret = {}, set()
    for host, entry in hosts.items():
        where = "hosts.%s" % host
        if not isinstance(entry, dict):
            raise InputError("%s [type] must be a mapping with groups and vars" % where)
        unknown = sorted(set(entry) - {"groups", "vars"})
        if unknown:
            raise InputError("%s [keys] unknown key(s) %s; only groups and vars"
                             % (where, ", ".join(map(str, unknown))))
        groups = entry.get("groups") or []
        host_vars = entry.get("vars") or {}
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise InputError("%s.groups [type] must be a list of group names" % where)
        if not isinstance(host_vars, dict):
            raise InputError("%s.vars [type] must be a mapping" % where)
        kept[str(host)] = {"groups": sorted(set(groups) - {"all", "ungrouped"}),
                           "vars": {k: v for k, v in host_vars.items() if k in REPORT_VARS}}
        for key, value in host_vars.items():
            if key not in REPORT_VARS and SECRET_NAME.search(str(key)):
                secret.update(_strings(value))
    shown = set(_strings(kept)) | set(kept) | {g for e in kept.values() for g in e["groups"]}
    return kept, secret - shown


def _now(text):
    if text is None:
        return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    now = parse_time(text)
    if now is None:
        raise InputError("now [rfc3339] %r is not an RFC 3339 timestamp" % text)
    return now


def _without_time(text):
    """The text with its evaluation time (the Evaluated at line names it; other sections repeat it) replaced."""
    match = TIME_LINE.search(text)
    return text.replace(match.group(1), "<now>") if match else text


def same_report(old, new, ignore_time):
    if old is None:
        return False
    return _without_time(old) == _without_time(new) if ignore_time else old == new


def _read(dest):
    try:
        with open(dest, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError("dest [read] %s: %s" % (dest, getattr(exc, "strerror", None) or type(exc).__name__)) from None


def write_report(module, dest, text):
    folder = os.path.dirname(os.path.abspath(dest))
    if not os.path.isdir(folder):
        raise InputError("dest [path] directory %s does not exist" % folder)
    try:
        fd, tmp = tempfile.mkstemp(prefix=".sam_preflight.", dir=folder)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
    except OSError as exc:
        raise InputError("dest [write] %s: %s" % (dest, exc.strerror or type(exc).__name__)) from None
    module.atomic_move(tmp, dest)


def run(module):
    params = module.params
    now = _now(params["now"])
    hosts, secret = select_hosts(params["hosts"])
    # hosts is the only no_log option.  Ansible would mask every scalar in it (host names, "0", addresses)
    # everywhere in the result and garble the report; keep masking only the values of dropped, secret-like
    # variables (dropped values never reach the report or the result anyway).
    module.no_log_values.clear()
    module.no_log_values.update(secret)
    review = build_review({"name": params["name"], "hosts": hosts}, now, params["vault_names"])
    text = render(review)
    findings = [dict(f.as_dict(), hosts=names) for f, names in review["findings"]]
    result = dict(changed=False, valid=review["ok"], findings=findings)
    if params["return_report"]:
        result["report"] = text
    dest = params["dest"]
    if dest:
        result["dest"] = dest
        old = _read(dest)
        if same_report(old, text, ignore_time=params["now"] is None):
            after = old
            result["changed"] = module.set_mode_if_different(dest, "0644", False)  # honours check mode
        else:
            after = text
            result["changed"] = True
            if not module.check_mode:
                write_report(module, dest, text)
                module.set_mode_if_different(dest, "0644", True)
        if module._diff:
            result["diff"] = {"before": old or "", "after": after, "before_header": dest, "after_header": dest}
    errors = ["%s (%s)" % (f.describe(), ", ".join(names)) for f, names in review["findings"] if f.severity == ERROR]
    return result, errors


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", default="inventory"),
            hosts=dict(type="dict", required=True, no_log=True),
            dest=dict(type="path"),
            now=dict(type="str"),
            vault_names=dict(type="list", elements="str", default=[], no_log=False),
            fail_on_errors=dict(type="bool", default=True),
            return_report=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    # The invocation never shows the hosts (they may hold vault values), whatever the masking below keeps.
    invocation = {"module_args": dict(module.params, hosts="VALUE_SPECIFIED_IN_NO_LOG_PARAMETER")}
    try:
        result, errors = run(module)
    except InputError as exc:
        module.fail_json(msg=str(exc), changed=False, invocation=invocation)
    except Exception as exc:  # never a traceback: it could quote host variables
        module.fail_json(msg="internal error in sam_preflight (%s); please report it" % type(exc).__name__,
                         changed=False, invocation=invocation)
    if errors and module.params["fail_on_errors"]:
        module.fail_json(msg="%d error finding(s) in the inventory's SAM documents:\n%s"
                         % (len(errors), "\n".join(errors)), invocation=invocation, **result)
    module.exit_json(invocation=invocation, **result)


if __name__ == "__main__":
    main()
