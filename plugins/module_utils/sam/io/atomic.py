# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Edge (does I/O): replace a small file atomically, so a reader never sees half of it.

A temporary file in the same directory gets the data and the mode first, then takes the file's name in one
rename; with ``durable`` the data and the rename are fsynced, so a crash cannot bring back the old content.
"""

import os
import tempfile


def replace_file(path, data, mode=0o600, durable=True):
    """Write ``data`` (bytes) to ``path`` through a temporary sibling and a rename; ``mode`` before any byte."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if durable:
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
