"""Fingerprints: a short hash naming a dataset's content and the transforms that made it.

A `map` result is cached under hash(parent fingerprint, function, arguments). A function is
hashed by what it does: its bytecode, constants, default values, closure values and the globals
it reads (other functions recursively, modules by name, plain values by pickle). When a
function holds something that cannot be hashed deterministically, `hash_function` returns None
and the result is not cached.
"""

from __future__ import annotations

import hashlib
import pickle
import types
import uuid
from typing import Any


def combine(*parts: Any) -> str:
    """A 16-hex-digit hash of the given parts (strings, or anything `repr` describes stably)."""
    h = hashlib.sha256()
    for part in parts:
        h.update(repr(part).encode())
        h.update(b"\x00")
    return h.hexdigest()[:16]


def random_fingerprint() -> str:
    return uuid.uuid4().hex[:16]


class _Unhashable(Exception):
    pass


def hash_function(fn: Any) -> str | None:
    """A stable hash of a callable's behaviour, or None when it cannot be hashed."""
    try:
        h = hashlib.sha256()
        _feed(h, fn, set())
        return h.hexdigest()[:16]
    except _Unhashable:
        return None


def hash_value(value: Any) -> str | None:
    """A stable hash of an argument value (pickled), or None when it cannot be pickled."""
    try:
        h = hashlib.sha256()
        _feed(h, value, set())
        return h.hexdigest()[:16]
    except _Unhashable:
        return None


def _feed(h: Any, obj: Any, seen: set[int]) -> None:
    if id(obj) in seen:
        h.update(b"<cycle>")
        return
    if isinstance(obj, types.ModuleType):
        h.update(f"module:{obj.__name__}".encode())
        return
    if isinstance(obj, types.MethodType):
        _feed(h, obj.__func__, seen)
        _feed(h, obj.__self__, seen)
        return
    if isinstance(obj, types.FunctionType):
        seen.add(id(obj))
        h.update(f"function:{obj.__module__}.{obj.__qualname__}".encode())
        _feed_code(h, obj.__code__, obj, seen)
        _feed(h, obj.__defaults__, seen)
        _feed(h, obj.__kwdefaults__, seen)
        for cell in obj.__closure__ or ():
            try:
                _feed(h, cell.cell_contents, seen)
            except ValueError:  # empty cell
                h.update(b"<empty>")
        return
    if isinstance(obj, types.BuiltinFunctionType) or isinstance(obj, type):
        h.update(f"named:{getattr(obj, '__module__', '')}.{obj.__qualname__}".encode())
        return
    if isinstance(obj, (list, tuple)):
        h.update(type(obj).__name__.encode())
        for item in obj:
            _feed(h, item, seen)
        return
    if isinstance(obj, dict):
        h.update(b"dict")
        for key in sorted(obj, key=repr):
            _feed(h, key, seen)
            _feed(h, obj[key], seen)
        return
    try:
        h.update(pickle.dumps(obj, protocol=4))
    except Exception as e:  # anything unpicklable: give up on caching
        raise _Unhashable(repr(type(obj))) from e


def _feed_code(h: Any, code: types.CodeType, fn: types.FunctionType, seen: set[int]) -> None:
    h.update(code.co_code)
    h.update(repr(code.co_names).encode())
    h.update(repr(code.co_varnames).encode())
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _feed_code(h, const, fn, seen)
        else:
            h.update(repr(const).encode())
    for name in code.co_names:  # the globals the function reads
        if name in fn.__globals__:
            value = fn.__globals__[name]
            h.update(name.encode())
            _feed(h, value, seen)
