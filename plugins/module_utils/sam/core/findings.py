# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one error type of the core: every problem names resource, field path and rule."""

from dataclasses import dataclass

ERROR = "error"
WARNING = "warning"
# A claim that is skipped (revoked, expired) is reported, never fatal.
SKIPPED = "skipped"
INFO = "info"


@dataclass(frozen=True)
class Finding:
    resource: str
    path: str
    rule: str
    message: str
    severity: str = ERROR

    def describe(self):
        """'Resource/name field.path [rule] message' (without the severity)."""
        where = self.resource + (" " + self.path if self.path else "")
        return "%s [%s] %s" % (where, self.rule, self.message)

    def __str__(self):
        return "%s: %s" % (self.severity, self.describe())

    def as_dict(self):
        return {
            "resource": self.resource,
            "path": self.path,
            "rule": self.rule,
            "message": self.message,
            "severity": self.severity,
        }


def errors(findings):
    return [f for f in findings if f.severity == ERROR]
