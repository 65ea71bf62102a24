"""Private helpers shared by the modules."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on error it is removed.

    The temporary name keeps the final suffixes (``.nii.gz``, ``.npz`` ...) so writers that look at
    the extension behave, and the file gets the usual permissions (``0o666 & ~umask``) rather than
    ``mkstemp``'s private 0600. A failed write never leaves a partial or overwritten output.
    """
    path = Path(path)
    suffix = "".join(path.suffixes[-2:]) if path.name.endswith(".nii.gz") else path.suffix
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".part{suffix}")
    except OSError as err:  # e.g. a read-only folder: name the output asked for, not the temporary name
        raise OSError(err.errno, err.strerror or str(err), str(path)) from err
    os.close(fd)
    try:
        try:
            yield tmp
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
            os.replace(tmp, path)
        except OSError as err:
            if err.filename is None or str(err.filename) == str(tmp):  # e.g. ENOSPC from a write: name the output
                raise OSError(err.errno, err.strerror or str(err), str(path)) from err
            raise
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
