"""``raise X from Y`` that survives compilation with mypyc (``tools/build_mypyc.py``).

mypyc (2.4) ignores a ``raise`` statement's ``from`` clause: compiled, ``raise X from Y`` raises
*X* with no ``__cause__`` and its context not suppressed (``__suppress_context__`` stays false).
The compiled modules write ``raise caused(X, Y) from Y`` instead: the same exception, cause and
suppressed context both ways (assigning ``__cause__`` is what ``from`` does, and it sets
``__suppress_context__`` too). ``tests/unit/test_mypyc_build.py`` requires that form of every
``raise ... from`` in the modules the build compiles.

mypyc (2.4) also mishandles the exception being handled across an ``await`` (issue 14 step 6a in
``benchmarks/RESULTS.md``): an ``await`` in a ``finally`` block re-raises, once the block ends,
whatever exception the *caller* was handling, and on the exceptional path leaves the exception
set as the thread's handled one for good; an ``await`` inside an ``except`` block leaves it set
while the coroutine is suspended. The compiled coroutines therefore await nothing in a
``finally`` or ``except`` block: the block records the exception, the awaited clean-up runs
after it, :func:`raised_in` gives an exception raised there the ``__context__`` that Python
would have given it inside the block, and :func:`reraise` raises the recorded one again as the
block's bare ``raise`` would have.
"""

from __future__ import annotations

from typing import NoReturn, TypeVar

__all__ = ["caused", "raised_in", "reraise"]

E = TypeVar("E", bound=BaseException)


def caused(exc: E, cause: BaseException | None) -> E:
    """*exc* with *cause* as its ``__cause__`` (``None``: none, the context suppressed)."""
    exc.__cause__ = cause
    return exc


def raised_in(error: E, handled: BaseException) -> E:
    """*error* with the ``__context__`` it would have had, raised while *handled* was being
    handled (in its ``except`` or ``finally`` block). Raised after the block, the first of
    *error*'s chain to have no context, or one that *handled* was raised on top of (an
    exception its caller was handling), was given that one instead: it gets *handled*."""
    below = _chain(handled)  # *handled* and what it was raised on top of
    link: BaseException = error
    seen: set[int] = set()
    while link is not handled and id(link) not in seen:
        seen.add(id(link))
        context = link.__context__
        if context is None or id(context) in below:
            if context is not handled:
                if id(error) in below:
                    # As Python does: no cycle (*error* is cut out of *handled*'s chain).
                    _cut(handled, error)
                link.__context__ = handled
            break
        link = context
    return error


def _chain(exc: BaseException) -> set[int]:
    """The ids of *exc* and of its context chain."""
    found: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in found:
        found.add(id(link))
        link = link.__context__
    return found


def _cut(chain: BaseException, exc: BaseException) -> None:
    """Remove the link to *exc* from *chain*'s context chain."""
    link = chain
    seen: set[int] = set()
    while link.__context__ is not None and id(link) not in seen:
        seen.add(id(link))
        if link.__context__ is exc:
            link.__context__ = None
            return
        link = link.__context__


def reraise(exc: BaseException) -> NoReturn:
    """Raise *exc* again as a bare ``raise`` in its ``except`` block would: its ``__context__``
    as it is (``raise exc`` would make it the exception being handled around the call, if
    any)."""
    context = exc.__context__
    try:
        raise exc
    finally:
        exc.__context__ = context
