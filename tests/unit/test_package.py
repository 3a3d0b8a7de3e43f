"""The public surface: what `import router` promises."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

import router
import router.core
import router.testing
from router import ConfigurationError, RouterError


@pytest.mark.parametrize("module", [router, router.core, router.testing])
def test_all_names_exist(module: object) -> None:
    names = module.__all__  # type: ignore[attr-defined]
    assert names == sorted(set(names), key=names.index)  # no duplicates
    for name in names:
        assert hasattr(module, name), name


def test_version_is_pep440() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+(?:(?:a|b|rc)\d+)?(?:\.dev\d+)?", router.__version__)


def test_typed_marker_ships() -> None:
    import router_bench

    assert (Path(router.__file__).parent / "py.typed").is_file()
    assert (Path(router_bench.__file__).parent / "py.typed").is_file()


def test_configuration_error_names_the_field() -> None:
    err = ConfigurationError("pool.max_size", "must be >= 1, not 0")
    assert isinstance(err, RouterError)
    assert isinstance(err, ValueError)
    assert err.field == "pool.max_size"
    assert str(err) == "pool.max_size: must be >= 1, not 0"


def test_pytest_plugin_is_registered_as_an_entry_point() -> None:
    from importlib.metadata import entry_points

    (plugin,) = [e for e in entry_points(group="pytest11") if e.name == "router"]
    assert plugin.value == "router.testing.pytest_plugin"
    importlib.import_module(plugin.value)
