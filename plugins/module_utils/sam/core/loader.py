# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Turn parsed documents (routerd Router YAML or boma.mesh variables) into resources.

Accepted shapes, each already parsed from YAML/JSON by the caller:
- a routerd ``Router`` document (``apiVersion: routerd.net/v1alpha1``, ``spec.resources[]``);
- a boma.mesh vars mapping with ``sam_resources`` and/or ``sam_node_resources`` lists;
- a mapping with a ``resources`` list, or a bare list of resources.
Resources of kinds the core does not interpret are kept but never validated.
"""

from dataclasses import dataclass, field

from .findings import Finding

ROUTER_API_VERSION = "routerd.net/v1alpha1"
VARS_KEYS = ("sam_resources", "sam_node_resources")


@dataclass(frozen=True)
class Resource:
    """One document.  Its spec is not changed once the Resource is made: parses of it are kept by the Resource
    itself (memo.ByIdentity)."""
    kind: str
    name: str
    spec: dict = field(compare=False, hash=False)
    source: str = field(default="", compare=False)

    @property
    def ref(self):
        return "%s/%s" % (self.kind, self.name)


def _resource_lists(doc, source):
    """Yield (list, path) pairs of resource lists found in one document."""
    if isinstance(doc, list):
        yield doc, source
        return
    if not isinstance(doc, dict):
        return
    if doc.get("kind") == "Router":
        spec = doc.get("spec")
        yield (spec.get("resources") if isinstance(spec, dict) else None), source + "spec.resources"
        return
    found = False
    for key in VARS_KEYS + ("resources",):
        if key in doc:
            found = True
            yield doc[key], source + key
    if not found and "kind" in doc and "spec" in doc:
        # A single resource document.
        yield [doc], source


def load_resources(documents):
    """Return (resources, findings) from a list of (source_name, parsed_document)."""
    findings = []
    by_ref = {}
    order = []
    for source_name, doc in documents:
        prefix = (source_name + ":") if source_name else ""
        lists = list(_resource_lists(doc, prefix))
        if not lists:
            findings.append(Finding(source_name or "document", "", "document-shape",
                                    "expected a routerd Router document, a mapping with "
                                    "sam_resources/sam_node_resources/resources, or a list of resources"))
            continue
        for items, path in lists:
            if not isinstance(items, list):
                findings.append(Finding(source_name or "document", path, "type", "must be a list of resources"))
                continue
            for index, item in enumerate(items):
                res = _envelope(item, "%s[%d]" % (path, index), findings, source_name)
                if res is None:
                    continue
                previous = by_ref.get(res.ref)
                if previous is None:
                    by_ref[res.ref] = res
                    order.append(res.ref)
                elif previous.spec != res.spec:
                    first = previous.source or "an earlier document"
                    message = "defined differently in %s and %s" % (first, source_name or "this document")
                    findings.append(Finding(res.ref, "spec", "conflicting-definition", message))
    return [by_ref[ref] for ref in order], findings


def _envelope(item, where, findings, source_name):
    if not isinstance(item, dict):
        findings.append(Finding(where, "", "type", "a resource must be a mapping"))
        return None
    kind = item.get("kind")
    meta = item.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    if not isinstance(kind, str) or not kind.strip():
        findings.append(Finding(where, "kind", "required", "a resource needs a kind"))
        return None
    if not isinstance(name, str) or not name.strip():
        findings.append(Finding("%s (%s)" % (where, kind), "metadata.name", "required", "a resource needs a name"))
        return None
    spec = item.get("spec", {})
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        findings.append(Finding("%s/%s" % (kind, name), "spec", "type", "spec must be a mapping"))
        return None
    return Resource(kind=kind.strip(), name=name.strip(), spec=spec, source=source_name)
