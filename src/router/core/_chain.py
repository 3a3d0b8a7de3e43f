"""``raise X from Y`` that survives compilation with mypyc (``tools/build_mypyc.py``).

mypyc (2.4) ignores a ``raise`` statement's ``from`` clause: compiled, ``raise X from Y`` raises
*X* with no ``__cause__`` and its context not suppressed (``__suppress_context__`` stays false).
The compiled modules write ``raise caused(X, Y) from Y`` instead: the same exception, cause and
suppressed context both ways (assigning ``__cause__`` is what ``from`` does, and it sets
``__suppress_context__`` too). ``tests/unit/test_mypyc_build.py`` requires that form of every
``raise ... from`` in the modules the build compiles.
"""

from __future__ import annotations

from typing import TypeVar

__all__ = ["caused"]

E = TypeVar("E", bound=BaseException)


def caused(exc: E, cause: BaseException | None) -> E:
    """*exc* with *cause* as its ``__cause__`` (``None``: none, the context suppressed)."""
    exc.__cause__ = cause
    return exc
