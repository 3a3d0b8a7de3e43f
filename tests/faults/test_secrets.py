"""Secrets (issue "Faults and abuse"): the fault cluster's password is a unique marker,
:data:`SECRET`; everything a user can see is collected and searched for it.

Reprs and strings of configurations, routers, sessions, transactions, pools, connections and
nodes; ``explain()``, ``stats()``, ``last_decision``; every exception (message, ``__cause__`` /
``__context__`` chain, formatted traceback) of auth failures, unreachable nodes and bad SQL; log
records at DEBUG and spans with ``record_sql=True`` (the suite's autouse check, plus the wrong
password's marker here); the CLI, in-process and as a subprocess, including its error output for
a password typed on the command line; SQLAlchemy engines, their URLs and errors. Attempts with a
wrong password use markers of their own, which must not be seen either.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator
from typing import Any, Final

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import router
from router import NodeConfig, PrimaryUnavailable, RouterConfig
from router.cli import main
from router.testing import LocalCluster
from tests.faults.conftest import KEEP_SPANS, SECRET, leaks
from tests.faults.test_bad_input import (
    WRONG,
    Client,
    closed_port,
    config_for,
    db_test,
    flavour,
    make,
)

__all__ = ["closed_port", "flavour", "make"]  # fixtures shared with test_bad_input

WRONG_HERE: Final = "pw-WRONG-SECRETS-4d17aa"
"""The wrong password of this module's attempts."""
MARKERS: Final = (WRONG, WRONG_HERE)
DATABASE: Final = "abuse_secrets"


def _hidden(label: str, text: object) -> None:
    shown = str(text)
    assert not leaks(shown), f"the password in {label}"
    for marker in MARKERS:
        assert marker not in shown, f"a wrong password in {label}"
        assert marker[3:-3] not in shown, f"part of a wrong password in {label}"


def everything(error: BaseException) -> str:
    """What an exception can show: its traceback, and message and repr of every link of its
    ``__cause__`` / ``__context__`` chain."""
    parts = ["".join(traceback.format_exception(error))]
    seen: set[int] = set()
    todo: list[BaseException | None] = [error]
    while todo:
        link = todo.pop()
        if link is None or id(link) in seen:
            continue
        seen.add(id(link))
        parts += [repr(link), str(link), repr(getattr(link, "args", ()))]
        todo += [link.__cause__, link.__context__]
    return "\n".join(parts)


@pytest.fixture(autouse=True)
def _wrong_passwords_kept(
    caplog: pytest.LogCaptureFixture, spans: InMemorySpanExporter
) -> Iterator[None]:
    """The suite's autouse check looks for SECRET; this one for the wrong passwords too."""
    yield
    assert getattr(spans, "dropped", 0) == 0, "more spans than kept: the check below saw only some"
    for record in caplog.records:
        _hidden(f"log record {record.name}", record.getMessage())
        _hidden(f"logged traceback {record.name}", record.exc_text or "")
        if record.exc_info and record.exc_info[1] is not None:
            _hidden(f"logged error {record.name}", everything(record.exc_info[1]))
    for span in spans.get_finished_spans():
        _hidden(f"span {span.name}", repr(dict(span.attributes or {})))
        _hidden(f"span {span.name} status", span.status.description or "")


@pytest.fixture(scope="module")
def db(fault_cluster: LocalCluster) -> Iterator[str]:
    fault_cluster.drop_database(DATABASE)
    fault_cluster.create_database(DATABASE)
    with fault_cluster.primary.connect(DATABASE) as conn:
        conn.execute("CREATE TABLE secrets (v text)")
    fault_cluster.wait_caught_up()
    yield DATABASE
    fault_cluster.drop_database(DATABASE)


def _url(cluster: LocalCluster, password: str = SECRET) -> str:
    hosts = ",".join(f"{n.host}:{n.port}" for n in cluster.nodes)
    return f"postgresql://postgres:{password}@{hosts}/{DATABASE}"


def _wrong(config: RouterConfig, password: str) -> RouterConfig:
    """*config* with every node's password replaced by *password*."""

    def node(n: NodeConfig) -> NodeConfig:
        return n.replace(dsn=n.dsn.replace(SECRET, password), name=n.name)

    nodes = [node(n) for n in config.all_nodes]
    return config.replace(primary=nodes[0], replicas=nodes[1:])


# -- configurations --------------------------------------------------------------------------------


@db_test
def test_configs_and_nodes_show_no_password(fault_cluster: LocalCluster, db: str) -> None:
    url = _url(fault_cluster)
    configs: list[object] = [
        config_for(fault_cluster, DATABASE, record_sql=True),
        RouterConfig.from_url(url),
        RouterConfig.from_url(url + "?router_policy=random&sslmode=disable"),
        RouterConfig.from_env({"ROUTER_URL": url, "ROUTER_RECORD_SQL": "on"}),
        RouterConfig.from_env(
            {"ROUTER_URL": _url(fault_cluster).replace(f":{SECRET}", ""), "ROUTER_PASSWORD": SECRET}
        ),
        RouterConfig.from_env(
            {
                "ROUTER_PRIMARY_URL": fault_cluster.primary.dsn_for(DATABASE),
                "ROUTER_REPLICA_URLS": ",".join(
                    r.dsn_for(DATABASE) for r in fault_cluster.replicas
                ),
            }
        ),
        NodeConfig(dsn=f"host=127.0.0.1 password='{SECRET}' dbname={DATABASE}"),
        NodeConfig(dsn="postgresql://postgres@127.0.0.1/db", password=SECRET),
    ]
    for config in configs:
        nodes = config.all_nodes if isinstance(config, RouterConfig) else (config,)
        assert all(isinstance(n, NodeConfig) and SECRET in n.connect_dsn for n in nodes)
        for shown in (repr(config), str(config), f"{config!r:>10}"):
            _hidden(f"{type(config).__name__} repr", shown)
        for n in nodes:
            assert isinstance(n, NodeConfig)
            for label, text in (("redacted_dsn", n.redacted_dsn), ("name", n.name)):
                _hidden(f"NodeConfig.{label}", text)
        if isinstance(config, RouterConfig):
            _hidden("pool/retry", repr((config.pool, config.retry)))
            # Each field's repr, as a debugger or a structured logger would show it.
            for spec in dataclasses.fields(config):
                _hidden(f"RouterConfig.{spec.name}", repr(getattr(config, spec.name)))
    _hidden("LocalCluster", repr(fault_cluster))
    _hidden("nodes", repr(fault_cluster.nodes))


# -- routers, sessions, pools, explain, stats -------------------------------------------------


def _inside(client: Client) -> list[str]:
    """Reprs of a session, its transaction, their connections and tokens, collected while
    they are open."""
    if client.flavour == "async":

        async def ago(r: Any) -> list[str]:
            seen = []
            async with r.session() as s:
                seen += [repr(s), str(s), repr(await s.fetch("SELECT 1"))]
                async with s.transaction() as tx:
                    seen += [repr(tx), repr(tx.connection), tx.node]
                    await tx.execute("INSERT INTO secrets VALUES ('s')")
                seen += [repr(s.token()), repr(r.last_decision)]
            async with r.transaction(readonly=True) as tx:
                seen += [repr(tx), repr(tx.connection), repr(await tx.fetchval("SELECT 1"))]
            return seen

        texts: list[str] = client.run(ago).ok()
        return texts

    def go(r: Any) -> list[str]:
        seen = []
        with r.session() as s:
            seen += [repr(s), str(s), repr(s.fetch("SELECT 1"))]
            with s.transaction() as tx:
                seen += [repr(tx), repr(tx.connection), tx.node]
                tx.execute("INSERT INTO secrets VALUES ('s')")
            seen += [repr(s.token()), repr(r.last_decision)]
        with r.transaction(readonly=True) as tx:
            seen += [repr(tx), repr(tx.connection), repr(tx.fetchval("SELECT 1"))]
        return seen

    sync_texts: list[str] = client.run(go).ok()
    return sync_texts


@db_test
def test_routers_sessions_pools_explain_stats_and_spans_show_no_password(
    fault_cluster: LocalCluster,
    db: str,
    make: Callable[[RouterConfig], Client],
    spans: InMemorySpanExporter,
) -> None:
    client = make(config_for(fault_cluster, DATABASE, record_sql=True))
    r = client.router
    _hidden("router before open", repr(r))
    client.open()
    seen: dict[str, object] = {"router": repr(r), "str(router)": str(r)}
    p = client.ph(1)
    for sql, params in (
        ("SELECT 1", ()),
        (f"SELECT {p}::text", ("value",)),
        ("INSERT INTO secrets VALUES ('w')", ()),
        ("SELEC 1", ()),
        ("SELECT 1\x00", ()),
    ):
        outcome = client.query("fetch", sql, *params)
        seen[f"decision of {sql!r}"] = repr(outcome.decision)
        if outcome.error is not None:
            seen[f"error of {sql!r}"] = everything(outcome.error)
    seen["inside"] = "\n".join(_inside(client))
    for sql in ("SELECT 1", "DELETE FROM secrets", "SET work_mem = '1MB'", "SELEC", "BEGIN"):
        seen[f"explain {sql!r}"] = repr(r.explain(sql))
    seen["stats"] = repr(r.stats())
    seen["config"] = repr(r.config)
    for name, pool in r._pools.items():
        seen[f"pool {name}"] = repr(pool) + repr(pool._pool) + repr(pool.usage())
    seen["monitor"] = repr(r._monitor) + repr(r._monitor.topology)
    seen["classifier"] = repr(r.engine.classifier)
    seen["engine"] = repr(r.engine)
    for label, text in seen.items():
        _hidden(label, text)
    finished = spans.get_finished_spans()
    texts = [str(s.attributes.get("db.query.text")) for s in finished if s.attributes]
    assert any("SELECT 1" in t for t in texts), "record_sql puts the SQL text in spans"
    assert not any("value" in repr(dict(s.attributes or {})) for s in finished)  # no parameters


# -- errors ----------------------------------------------------------------------------------------


@db_test
def test_errors_of_wrong_passwords_unreachable_nodes_and_bad_sql_show_no_password(
    fault_cluster: LocalCluster,
    db: str,
    make: Callable[[RouterConfig], Client],
    closed_port: tuple[str, int],
) -> None:
    base = config_for(fault_cluster, DATABASE, record_sql=True)
    wrong = make(_wrong(base, WRONG_HERE))
    wrong.open()
    errors: list[BaseException] = []
    for method, sql in (("fetchval", "SELECT 1"), ("execute", "INSERT INTO secrets VALUES ('x')")):
        errors.append(wrong.query(method, sql).failed())
    errors.append(wrong.in_transaction("SELECT 1").failed())
    errors.append(wrong.in_session("SELECT 1").failed())
    assert all(isinstance(e, PrimaryUnavailable) for e in errors), errors
    assert "password authentication failed" in str(errors[0])
    # Unreachable: a closed port and a name that does not resolve, with the real password.
    host, port = closed_port
    unreachable = make(
        base.replace(
            primary=NodeConfig(
                dsn=f"postgresql://postgres:{SECRET}@{host}:{port}/{DATABASE}", name="closed"
            ),
            replicas=[
                NodeConfig(
                    dsn=f"postgresql://postgres:{SECRET}@no-such-host.invalid/{DATABASE}",
                    name="unresolvable",
                )
            ],
        )
    )
    unreachable.open()
    errors.append(unreachable.query("fetchval", "SELECT 1").failed())
    errors.append(unreachable.query("execute", "DELETE FROM secrets").failed())
    # Bad SQL on a good router: the database's own errors.
    good = make(base)
    good.open()
    for sql in ("SELEC 1", "SELECT * FROM no_such_table", "SELECT 1\x00"):
        errors.append(good.query("fetch", sql).failed())
    errors.append(good.in_transaction("INSERT INTO secrets VALUES (1, 2)").failed())
    for error in errors:
        _hidden(f"{type(error).__name__}: {error}"[:80], everything(error))
    for client in (wrong, unreachable):
        _hidden("stats of an unusable router", repr(client.router.stats()))
        _hidden("explain on an unusable router", repr(client.router.explain("SELECT 1")))


@db_test
def test_configuration_errors_on_the_clusters_urls_show_no_password(
    fault_cluster: LocalCluster,
) -> None:
    url = _url(fault_cluster)
    for make_config in (
        lambda: RouterConfig.from_url(url.replace(f"/{DATABASE}", "/")),
        lambda: RouterConfig.from_url(url + "?router_policy=fastest"),
        lambda: RouterConfig.from_url(url + "?frobnicate=1"),
        lambda: RouterConfig.from_url(url.replace("@", "@@")),
        lambda: RouterConfig.from_env({"ROUTER_URL": url, "ROUTER_POOL_MAX_SIZE": SECRET}),
        lambda: RouterConfig.from_env({"ROUTER_URL": url, "ROUTER_PASSWORD": SECRET}),
        lambda: RouterConfig.from_env({"ROUTER_URL": url, "ROUTER_PASSWRD": SECRET}),
        lambda: RouterConfig(primary=fault_cluster.primary.dsn, replicas=SECRET),
        lambda: RouterConfig(primary=fault_cluster.primary.dsn, application_name=SECRET * 4),
        lambda: NodeConfig(dsn=fault_cluster.primary.dsn, password=SECRET),
        lambda: router.Router(url),  # type: ignore[arg-type]
    ):
        with pytest.raises(router.ConfigurationError) as info:
            make_config()
        _hidden(str(info.value)[:60], everything(info.value))


# -- the CLI ---------------------------------------------------------------------------------------


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """``router ARGV`` in-process: its exit code and everything it printed."""
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    out, err = capsys.readouterr()
    return code, out + err


@db_test
def test_the_cli_shows_no_password(
    fault_cluster: LocalCluster,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    base = str(fault_cluster.base_dir)
    monkeypatch.setenv("PGPASSWORD", SECRET)
    url = _url(fault_cluster)
    server = url.rsplit("/", 1)[0] + "/postgres"  # a database that exists
    ok = [
        ["cluster", "url", "--dir", base],
        ["cluster", "url", "--json", "--dir", base],
        ["cluster", "status", "--dir", base],
        ["cluster", "status", "--json", "--dir", base],
        ["-v", "cluster", "status", "--dir", base],
        ["classify", "SELECT * FROM secrets FOR UPDATE"],
        ["classify", "--json", url],
        ["status", server],
        ["status", "--json", server],
        ["-v", "status", "--watch", "0.05", "--count", "2", server],
    ]
    for argv in ok:
        code, printed = _cli(argv, capsys)
        assert code == 0, (argv, printed)
        _hidden(f"router {' '.join(argv[:2])}", printed)
    # status really connected (with PGPASSWORD): it knows each node's role.
    _code, printed = _cli(["cluster", "status", "--json", "--dir", base], capsys)
    assert '"role": "primary"' in printed
    # Without it, status says why it knows nothing, and fails.
    monkeypatch.delenv("PGPASSWORD")
    code, printed = _cli(["cluster", "status", "--dir", base], capsys)
    assert code == 1
    assert "no answer" in printed
    assert "no password supplied" in printed
    assert "(set PGPASSWORD)" in printed
    code, printed = _cli(["cluster", "status", "--json", "--dir", base], capsys)
    assert code == 1
    assert all(row["error"] for row in json.loads(printed))
    monkeypatch.setenv("PGPASSWORD", SECRET)
    helps = [["--help"], ["cluster", "--help"], ["classify", "--help"], ["status", "--help"]]
    helps += [["cluster", action, "--help"] for action in ("up", "down", "url", "status", "smoke")]
    for argv in helps:
        code, printed = _cli(argv, capsys)
        assert code == 0
        assert "usage:" in printed
        _hidden(f"router {' '.join(argv)}", printed)
    typed = f"postgresql://postgres:{SECRET}@127.0.0.1/db"
    mistakes = [
        ["cluster", "url", typed],
        ["cluster", "status", "--dir", typed],
        ["cluster", "status", "--dir", f"/tmp/x password={SECRET}"],
        [typed],
        ["cluster", typed],
        ["cluster", "up", "--replicas", typed],
        ["cluster", "url", "--dir", base, f"password={SECRET}"],
        ["status", server.replace(SECRET, SECRET[::-1])],  # a wrong password
        ["status", f"{typed}?router_policy=nope"],
    ]
    for argv in mistakes:
        code, printed = _cli(argv, capsys)
        label = f"router {' '.join(argv)}".replace(SECRET, "SECRET")
        assert code != 0, label
        assert printed, label
        _hidden(label, printed)
    # A function name that is a URL: classified anyway (nothing to refuse), nothing echoed.
    _code, printed = _cli(["-v", "classify", "--read-function", typed, "SELECT 1"], capsys)
    _hidden("router classify --read-function URL", printed)


@db_test
def test_the_cli_as_a_process_shows_no_password(fault_cluster: LocalCluster) -> None:
    typed = f"postgresql://postgres:{SECRET}@127.0.0.1/db"
    env = {**os.environ, "PGPASSWORD": SECRET}
    for argv in (
        ["cluster", "url", typed],
        ["cluster", "status", "--dir", str(fault_cluster.base_dir)],
        ["-v", "cluster", "status", "--json", "--dir", str(fault_cluster.base_dir)],
        ["nonsense", typed],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "router.cli", *argv],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        assert done.stdout or done.stderr
        _hidden(f"router {argv[0]} {argv[1]} (process)", done.stdout + done.stderr)


# -- SQLAlchemy ------------------------------------------------------------------------------------


@db_test
def test_sqlalchemy_engines_urls_and_errors_show_no_password(
    fault_cluster: LocalCluster, db: str
) -> None:
    import sqlalchemy.exc
    from sqlalchemy import text

    from router.sqlalchemy import async_sessionmaker, sessionmaker

    config = config_for(fault_cluster, DATABASE)
    seen: dict[str, object] = {}
    with sessionmaker(config) as factory:
        seen["factory"] = repr(factory)
        for name, engine in factory.engines.items():
            seen[f"engine {name}"] = repr(engine) + str(engine.url) + repr(engine.pool)
            seen[f"url {name}"] = engine.url.render_as_string(hide_password=False)
        with factory() as session:
            seen["session"] = repr(session) + repr(session.execute(text("SELECT 1")).all())
            seen["decision"] = repr(session.last_decision)
            with pytest.raises(sqlalchemy.exc.ProgrammingError) as info:
                session.execute(text("SELEC 1"))
            seen["sa error"] = everything(info.value)
        seen["stats"] = repr(factory.router.stats())
    with sessionmaker(_wrong(config, WRONG_HERE)) as factory, factory() as session:
        with pytest.raises(PrimaryUnavailable) as refused:
            session.execute(text("INSERT INTO secrets VALUES ('x')"))
        seen["wrong password"] = everything(refused.value)
    async_factory = async_sessionmaker(config)
    for name, async_engine in async_factory.engines.items():
        seen[f"async engine {name}"] = repr(async_engine) + str(async_engine.url)
        seen[f"async url {name}"] = async_engine.url.render_as_string(hide_password=False)
    seen["async factory"] = repr(async_factory)
    asyncio.run(async_factory.aclose())
    for label, shown in seen.items():
        _hidden(label, shown)


def test_the_span_watch_catches_a_password_and_bounds_what_it_keeps(spans: Any) -> None:
    """The autouse check is only as good as the watch it reads: a span carrying the marker is
    caught even past the spans kept."""
    tracer = trace.get_tracer("tests.faults")
    for i in range(KEEP_SPANS + 10):
        with tracer.start_as_current_span("filler", attributes={"i": i}):
            pass
    with tracer.start_as_current_span("leaky", attributes={"dsn": f"password={SECRET}"}):
        pass
    assert len(spans.get_finished_spans()) == KEEP_SPANS
    assert spans.dropped == 11
    assert spans.leaked == ["leaky"]
    spans.clear()  # the catch was the point; the autouse check must not fail this test
