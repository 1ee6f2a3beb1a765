# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter boma.mesh.record_claims (documented in record_claims.yml): the RR's records as claim resources.

The conversion is module_utils/sam/core/records.py, the one the RR's service uses for its own desired state, so
sam_rr applies the claims exactly as the service does; this file only checks the input's shape.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.boma.mesh.plugins.module_utils.sam.core import records as core_records


def record_claims(records):
    """SAMEnrollmentClaim resources of the records that are not revoked, with the admin-owned fields applied."""
    if not isinstance(records, (list, tuple)):
        raise AnsibleFilterError("record_claims: input [type] must be a list of records, got %s"
                                 % type(records).__name__)
    for index, record in enumerate(records):
        for key, kind in (("name", str), ("spec", dict)):
            if not isinstance(record, dict) or not isinstance(record.get(key), kind):
                raise AnsibleFilterError("record_claims: records[%d].%s [type] must be a %s"
                                         % (index, key, "string" if kind is str else "mapping"))
    return core_records.record_claims(records)


class FilterModule:
    """SAM claim record filters."""

    def filters(self):
        return {"record_claims": record_claims}
