"""The documentation cannot fall behind the code: every configuration field has a meaning on
the generated reference page, every error has a troubleshooting section, and the page that
describes ``router status --json`` names exactly the fields it prints."""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import router
import router.errors
from router.cli._status import NodeReport, StatusReport
from router.config import NodeConfig, PoolConfig, RetryConfig, RouterConfig

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def _tool(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


config_reference = _tool("config_reference")


def test_every_configuration_field_is_documented() -> None:
    assert config_reference.undocumented() == []
    page = config_reference.render()
    for cls, prefix in (
        (RouterConfig, ""),
        (PoolConfig, "pool."),
        (RetryConfig, "retry."),
        (NodeConfig, ""),
    ):
        for spec in dataclasses.fields(cls):
            if spec.init and not spec.name.startswith("_"):
                cell = f"| `{prefix}{spec.name}` |"
                row = next(line for line in page.splitlines() if cell in line)
                meaning = row.rstrip(" |").rsplit(" | ", 1)[-1]
                assert len(meaning) > 15, (spec.name, meaning)
    assert "`ROUTER_POOL_MAX_SIZE`" in page
    assert "`router_max_lag_seconds`" in page
    row = next(line for line in page.splitlines() if line.startswith("| `max_lag_seconds` |"))
    assert "`5.0`" in row
    assert "`ROUTER_MAX_LAG_SECONDS`" in row


def test_the_documentation_check_can_fail() -> None:
    @dataclasses.dataclass
    class Undocumented:
        documented: int = 1
        """Has a meaning."""
        forgotten: int = 2

    assert config_reference.field_docs(Undocumented) == {"documented": "Has a meaning."}


def _subclasses(cls: type[object]) -> set[type]:
    found: set[type] = set()
    for sub in cls.__subclasses__():
        found |= {sub, *_subclasses(sub)}
    return found


def test_every_router_error_has_a_troubleshooting_section() -> None:
    page = (DOCS / "troubleshooting.md").read_text(encoding="utf-8")
    headings = set(re.findall(r"^## (\w+)$", page, re.M))
    errors = {cls.__name__ for cls in _subclasses(router.errors.RouterError)}
    assert errors == set(router.errors.__all__) - {"RouterError"}
    assert errors <= headings, sorted(errors - headings)
    for name in errors:
        section = page.split(f"## {name}\n", 1)[1].split("\n## ", 1)[0]
        assert "**When**" in section, name
        assert "**What to do**" in section, name


def _table_fields(section: str) -> list[str]:
    return re.findall(r"^\| `(\w+)` \|", section, re.M)


def test_the_status_schema_page_matches_the_json() -> None:
    page = (DOCS / "reference" / "status.md").read_text(encoding="utf-8")
    json_part = page.split("## JSON", 1)[1]
    report_part, node_part = json_part.split("Each node:", 1)
    assert _table_fields(report_part) == [f.name for f in dataclasses.fields(StatusReport)]
    assert _table_fields(node_part) == [f.name for f in dataclasses.fields(NodeReport)]


def test_the_api_reference_covers_the_public_surface() -> None:
    pages = "\n".join(p.read_text(encoding="utf-8") for p in (DOCS / "api").glob("*.md"))
    documented = set(re.findall(r"^::: router(?:\.config|\.errors)?\.(\w+)", pages, re.M))
    if "::: router.errors\n" in pages:
        documented |= set(router.errors.__all__)
    missing = set(router.__all__) - documented - {"__version__"}
    assert not missing, sorted(missing)
    for module in (
        "router.sqlalchemy",
        "router.testing",
        "router.testing.pytest_plugin",
        "router.web",
    ):
        assert f"::: {module}\n" in pages, module


def test_the_operations_page_names_every_metric_and_span_attribute() -> None:
    source = (ROOT / "src" / "router" / "_telemetry.py").read_text(encoding="utf-8")
    instruments = re.findall(r'create_observable_\w+\(\s*"([\w.]+)"', source)
    attributes = re.findall(r'"((?:db|server|router|error)\.[\w.]+)"', source)
    units = re.findall(r'unit="([^"]+)"', source)
    assert len(instruments) >= 3
    assert "router.reason" in attributes
    page = (DOCS / "operations.md").read_text(encoding="utf-8")
    for name in {*instruments, *attributes, *units}:
        assert f"`{name}`" in page, name
    for reason in router.Reason:  # the values of router.reason
        assert f"`{reason.value}`" in page, reason
