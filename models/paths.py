"""Output directories, checked before any work: a run that trains for minutes and then cannot
write its checkpoint or its pictures (the path is a file, or lies under one, or is read-only)
should be told so at once, not after the first epoch or after training."""
from __future__ import annotations

__all__ = ["check_output_dir"]

import os
import pathlib

from theta.errors import OptionError


def check_output_dir(path, option: str) -> pathlib.Path:
    """``path`` as a directory theta can write into (made later if missing), else OptionError
    naming ``option`` and the path.

    Parameters
    ----------
    path : path
    option : str
        The option that named it (``--out``, ``--plots``, ``-o``), for the message.

    Returns
    -------
    pathlib.Path
    """
    path = pathlib.Path(path)
    try:
        if path.exists() and not path.is_dir():
            raise OptionError(f"{option} {path}: that is a file, not a directory; name a directory (it is made "
                              "if missing)")
        ancestor = path.absolute()
        while not ancestor.exists():
            ancestor = ancestor.parent
    except OSError as e:    # e.g. a parent directory that may not be searched
        raise OptionError(f"{option} {path}: cannot be used ({e.strerror or e})") from None
    if not ancestor.is_dir():
        raise OptionError(f"{option} {path}: {ancestor} is a file, so no directory can be made under it")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise OptionError(f"{option} {path}: {ancestor} is not writable")
    return path
