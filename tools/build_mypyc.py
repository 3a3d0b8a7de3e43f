"""Compile the hot path with mypyc, in place (an optional speed-up; the pure-Python
modules stay and are the fallback).

    .venv/bin/python tools/build_mypyc.py           # build: src/router/**/<module>.*.so
    .venv/bin/python tools/build_mypyc.py --clean   # remove them: pure Python again

Python imports an extension module before a ``.py`` of the same name, so once built the
compiled modules are the ones loaded (``router._engine.__file__`` ends in ``.so``); after
``--clean`` the sources are. Needs mypy (the ``dev`` extra: ``mypyc`` comes with it),
setuptools, a C compiler and Python's headers; ~2.5 min on 2 busy cores. The build's
temporary files go to ``build/mypyc`` (git-ignored, as the ``.so``).

What changes when compiled (the tests pass both ways: ``MYPYC_ROUTER=1`` / ``0`` makes
``tests/unit/test_mypyc_build.py`` insist on one): compiled classes are native, so their
instances take no new attributes and their methods cannot be patched per instance (the
module's own calls bind early); a wrong argument type at their boundary is a ``TypeError``;
their class docstrings are gone at run time (``help(router.Decision)``). Modules whose public
entry points take what applications pass stay Python (``STAY_PYTHON``).

mypyc (2.4) ignores a ``raise`` statement's ``from`` clause (the exception would lose its
``__cause__``): the compiled modules write ``raise caused(X, Y) from Y``
(``router/core/_chain.py``), and ``tests/unit/test_mypyc_build.py`` refuses any other
``raise ... from`` in them. It also mis-compiles an ``await`` in a ``finally`` or ``except``
block (the exception being handled leaks into the thread's state and is raised again later,
elsewhere): the compiled coroutines await after the block instead (``router/core/_chain.py``,
``router._async._runtime.finish``), and the same test refuses such an ``await`` in them.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
#: The shared library's name: ``src/router_mypyc__mypyc.*.so`` (holds the compiled code;
#: each module's own ``.so`` is a small shim that loads it).
GROUP = "router_mypyc"

#: Modules of the core that stay Python, and why.
STAY_PYTHON = {
    # Lsn subclasses int: "inheriting from most builtin types is unimplemented" (compiled
    # code treats an Lsn as an object).
    "_lsn.py",
    # RoundRobinPolicy's itertools.count() raised SystemError when constructed compiled (step 1
    # of issue 14, benchmarks/RESULTS.md), and
    # the policies' `choose = __call__` aliases are "unsupported default attribute values"
    # (users may subclass or wrap the built-in policies: they stay ordinary classes).
    "_policies.py",
    # Its public classify()/Classifier take what applications pass (non-strings are answered
    # as unparseable, a bad catalog is a ConfigurationError): compiled, the argument types
    # would be checked first, with another error. Its cached lookup is ~0.1 us.
    "_classify.py",
    # WalHistory's `LIMIT: ClassVar[int]` in a frozen slots dataclass fails at import
    # compiled ("attribute 'LIMIT' is read-only").
    "_nodes.py",
}

#: The async read path: the async executor, pool, driver and session (issue 14, steps 5a and
#: 6a in benchmarks/RESULTS.md: they cut the router's addition to an async read from ~41k to
#: ~16k instructions). Their coroutines await nothing in a `finally` or `except` block (see
#: the module docstring).
ASYNC_MODULES = [
    "router/_async/_executor.py",
    "router/_async/_pool.py",
    "router/_async/_driver.py",
    "router/_async/_session.py",
]

#: The modules compiled, relative to ``src``: the routing engine, its scope, stats and
#: telemetry, the pure core, the sync executor, pool, driver and session, and
#: ``ASYNC_MODULES``. Kept Python beside them: the public ``Router``/``AsyncRouter`` and
#: ``Queries`` classes (the public face, which applications may subclass or patch; compiled,
#: ``fetchrow`` would no longer be a coroutine function to ``inspect``), the monitors (not per
#: statement), ``_runtime.py``, and ``_sync/_connect.py``/``_async/_connect.py`` (a subclass of
#: psycopg's ``Connection`` or of asyncpg's, which has a metaclass, cannot be a mypyc class).
MODULES = [
    "router/_engine.py",
    "router/_scope.py",
    "router/_stats.py",
    "router/_telemetry.py",
    "router/_sync/_executor.py",
    "router/_sync/_pool.py",
    "router/_sync/_driver.py",
    "router/_sync/_session.py",
    *ASYNC_MODULES,
    *sorted(
        f"router/core/{p.name}"
        for p in (SRC / "router" / "core").glob("*.py")
        if p.name not in {"__init__.py", *STAY_PYTHON}
    ),
]


def built() -> list[Path]:
    """The compiled files now in the tree (module shims and the shared library)."""
    found = list(SRC.glob(f"{GROUP}__mypyc*.so"))
    found += (SRC / "router").rglob("*.so")
    return sorted(found)


def clean() -> None:
    for path in built():
        path.unlink()
        print(f"removed {path.relative_to(ROOT)}")


def build(opt_level: str, modules: list[str]) -> None:
    # Imported here: --clean needs neither mypy nor setuptools.
    from mypyc.build import mypycify  # noqa: PLC0415
    from setuptools import setup  # noqa: PLC0415

    clean()
    started = time.monotonic()
    os.chdir(SRC)
    extensions = mypycify(
        [*modules, "--config-file", str(ROOT / "pyproject.toml")],
        opt_level=opt_level,
        group_name=GROUP,
        target_dir=str(ROOT / "build" / "mypyc"),
    )
    setup(
        name="router-mypyc",
        ext_modules=extensions,
        script_args=[
            "build_ext",
            "--inplace",
            "--build-temp",
            str(ROOT / "build" / "mypyc" / "temp"),
            # Else setuptools stages the modules in src/build/lib.*, which --clean would miss.
            "--build-lib",
            str(ROOT / "build" / "mypyc" / "lib"),
        ],
    )
    print(f"built {len(built())} files in {time.monotonic() - started:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clean", action="store_true", help="remove the compiled modules")
    parser.add_argument("--opt-level", default="3", help="the C compiler's -O (default 3)")
    parser.add_argument(
        "--with-async",
        action="store_true",
        help="(the default now: the async read path, ASYNC_MODULES, is always built)",
    )
    args = parser.parse_args(argv)
    if args.clean:
        clean()
    else:
        build(args.opt_level, MODULES)
    return 0


if __name__ == "__main__":
    sys.exit(main())
