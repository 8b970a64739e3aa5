"""One small validator for the JSON that theta's training artifacts carry (a job's job.json, a
checkpoint's meta), driven by tables of fields: anything else (a missing field, a string where a
number belongs, a batch size of 0) is an ArtifactError naming the file and the field, instead of
a KeyError or a TypeError deep inside a training loop. Checksums catch accidents, not edits: a
file edited and re-checksummed arrives here.

A table maps each field to a ``Field``: the JSON types it may have, an optional check of the
value with the words for what it must be, and for an object or a list the table or ``Field``
of its contents. Imports only the standard library and theta.errors (a job runs without the
compiler).
"""
from __future__ import annotations

__all__ = ["Field", "validate", "fail", "INT", "NAT", "POSITIVE", "NUMBER", "TEXT"]

import dataclasses
import math
from typing import Any, Callable

from theta.errors import ArtifactError

_JSON_NAMES = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
               dict: "an object", type(None): "null"}


@dataclasses.dataclass(frozen=True)
class Field:
    """What one field may hold.

    Parameters
    ----------
    types : tuple of type
        JSON types allowed (``int`` excludes booleans; ``float`` admits integers).
    check : callable, optional
        A further test of a value of one of ``types``.
    want : str, optional
        What a valid value is, in words (the message says it).
    fields : dict, optional
        For an object: the table of its fields (other keys are refused too).
    items : Field, optional
        For a list: what each item is.
    keys : Field, optional
        For an object of free keys (``fields`` absent): what each value is.
    """
    types: tuple
    check: Callable[[Any], bool] | None = None
    want: str = ""
    fields: dict | None = None
    items: "Field | None" = None
    keys: "Field | None" = None


def _finite(v) -> bool:
    return math.isfinite(v)


INT = Field((int,), want="an integer")
NAT = Field((int,), lambda v: v >= 0, "an integer >= 0")
POSITIVE = Field((int,), lambda v: v >= 1, "an integer >= 1")
NUMBER = Field((float,), _finite, "a finite number")
TEXT = Field((str,), want="a string")


def _type_ok(value, types: tuple) -> bool:
    if isinstance(value, bool):
        return bool in types
    if isinstance(value, int) and float in types:
        return True
    return isinstance(value, types)


def _describe(value) -> str:
    shown = repr(value) if not isinstance(value, (dict, list)) or len(repr(value)) < 60 else f"{repr(value)[:57]}..."
    return f"{shown} ({_JSON_NAMES.get(type(value), type(value).__name__)})"


def validate(value: Any, table: dict, file: str, hint: str = "") -> Any:
    """``value`` (a JSON object) if it agrees with ``table``, else ArtifactError naming ``file``
    and the dotted path of the first field that does not.

    Parameters
    ----------
    value : object
        Decoded JSON.
    table : dict
        Field name -> Field.
    file : str
        The file it came from (for the message).
    hint : str, optional
        What to do about a bad file (for the message).

    Returns
    -------
    object
        ``value`` itself.
    """
    _check(value, Field((dict,), fields=table), (file, hint), "")
    return value


def fail(file: str, path: str, what: str, hint: str = "") -> ArtifactError:
    """The error for field ``path`` of ``file``.

    Parameters
    ----------
    file : str
    path : str
        The field's dotted path (``trainer.best``); empty for the document itself.
    what : str
        What is wrong with it.
    hint : str, optional
        What to do.

    Returns
    -------
    ArtifactError
    """
    field = f"field {path!r}" if path else "its top level"
    return ArtifactError(f"{file}: {field} {what}; the file is damaged or was edited" + (f": {hint}" if hint else ""))


def _check(value, spec: Field, where: tuple, path: str) -> None:
    """Check ``value`` at ``path`` against ``spec``; ``where`` is (file, hint) for the message."""
    if not _type_ok(value, spec.types):
        want = spec.want or " or ".join(_JSON_NAMES[t] for t in spec.types)
        raise fail(where[0], path, f"is {_describe(value)}, want {want}", where[1])
    if spec.check is not None and not spec.check(value):
        raise fail(where[0], path, f"is {_describe(value)}, want {spec.want}", where[1])
    if isinstance(value, dict) and spec.fields is not None:
        for name, sub in spec.fields.items():
            here = f"{path}.{name}" if path else name
            if name not in value:
                raise fail(where[0], here, "is missing", where[1])
            _check(value[name], sub, where, here)
        extra = sorted(set(value) - set(spec.fields))
        if extra:
            here = f"{path}.{extra[0]}" if path else extra[0]
            raise fail(where[0], here, "is not a field theta writes", where[1])
    elif isinstance(value, dict) and spec.keys is not None:
        for name, item in value.items():
            _check(item, spec.keys, where, f"{path}.{name}" if path else name)
    if isinstance(value, list) and spec.items is not None:
        for k, item in enumerate(value):
            _check(item, spec.items, where, f"{path}[{k}]")
