"""``PatroniCluster`` and topology from Patroni's REST API, on a real etcd + Patroni cluster."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable

import pytest

from router import AsyncRouter, NodeConfig, RouterConfig
from router.testing import PatroniCluster
from router.testing._proc import free_port, pid_alive

pytestmark = [pytest.mark.integration, pytest.mark.patroni]


async def _until(condition: Callable[[], object], timeout: float, what: str) -> float:
    """When *condition* first held (polled every 10 ms without blocking the loop)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)
    return time.monotonic()


def _config(cluster: PatroniCluster, urls: list[str]) -> RouterConfig:
    return RouterConfig(
        nodes=[NodeConfig(dsn=n.dsn, name=n.name) for n in cluster.nodes],
        patroni_urls=urls,
        monitor_interval=0.1,
    )


@pytest.mark.asyncio
async def test_the_router_reads_patroni_and_the_database_has_the_last_word(
    patroni_cluster: PatroniCluster,
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    leader = patroni_cluster.leader()
    async with AsyncRouter(_config(patroni_cluster, [dead, *patroni_cluster.rest_urls])) as rt:
        topology = rt._monitor.topology
        assert topology.ha is not None  # the second URL answered
        assert topology.ha.leader == leader.name
        assert set(topology.ha.members) == {n.name for n in patroni_cluster.nodes}
        assert topology.primary == leader.name
        assert await rt.fetchval("SELECT inet_server_port()") in {
            n.port for n in patroni_cluster.replicas
        }


@pytest.mark.asyncio
async def test_unreachable_patroni_falls_back_to_sql_discovery(
    patroni_cluster: PatroniCluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "router")
    dead = f"http://127.0.0.1:{free_port()}"
    leader = patroni_cluster.leader()
    async with AsyncRouter(_config(patroni_cluster, [dead])) as rt:
        assert rt._monitor.topology.ha is None
        assert rt.stats()["primary"] == leader.name
        await rt.execute("SELECT 1")
    assert any("SQL discovery alone" in r.getMessage() for r in caplog.records)


@pytest.mark.asyncio
async def test_a_returning_member_is_probed_at_once(patroni_cluster: PatroniCluster) -> None:
    """A replica killed and restarted by Patroni serves again within about a second of
    Patroni reporting it streaming, however long the probe backoff has grown."""
    replica = patroni_cluster.replicas[0]
    config = _config(patroni_cluster, patroni_cluster.rest_urls).replace(
        probe_backoff_initial=5.0, probe_backoff_max=30.0, readmit_hold=0.2
    )
    async with AsyncRouter(config) as rt:
        await asyncio.to_thread(patroni_cluster.kill_postgres, replica)

        def health() -> tuple[str, bool]:
            node = rt.stats()["nodes"][replica.name]
            return node["health"], node["admitted"]

        await _until(lambda: health()[0] == "down", 10, "the replica down")

        def streaming() -> bool:
            for m in patroni_cluster.cluster_state(timeout=0.5).get("members", []):
                if m["name"] == replica.name:
                    return bool(m.get("state") == "streaming")
            return False

        # Patroni notices the crash on its next loop (until then it still says streaming),
        # restarts the server, and reports it streaming again.
        while await asyncio.to_thread(streaming):
            await asyncio.sleep(0.05)
        while not await asyncio.to_thread(streaming):
            await asyncio.sleep(0.05)
        try:
            await _until(lambda: health() == ("up", True), 2.0, "the replica serving again")
        except AssertionError:
            raise AssertionError(rt.stats()["nodes"][replica.name]) from None


def test_a_patroni_cluster_leaves_nothing_behind() -> None:
    cluster = PatroniCluster(members=1)
    with cluster:
        base = cluster.base_dir
        pids = [m.proc.pid for m in cluster.members if m.proc is not None]
        postmaster = cluster.leader().pid
        assert postmaster is not None
        pids.append(postmaster)
    assert not base.exists()
    assert not [p for p in pids if pid_alive(p)]
    assert os.path.basename(base).startswith("router-cluster-patroni-")


def test_the_sync_router_reads_patroni_too(patroni_cluster: PatroniCluster) -> None:
    from router import Router

    leader = patroni_cluster.leader()
    with Router(_config(patroni_cluster, patroni_cluster.rest_urls)) as rt:
        topology = rt._monitor.topology
        assert topology.ha is not None
        assert topology.ha.leader == leader.name
        assert rt.fetchval("SELECT NOT pg_is_in_recovery() /* router:primary */") is True


@pytest.mark.asyncio
async def test_members_learnt_from_patroni_route_and_show_patroni_in_stats(
    patroni_cluster: PatroniCluster,
) -> None:
    """``RouterConfig.from_patroni`` makes one node per member at its own address (from a DSN
    without a host), after a dead URL; the router routes over them, and ``stats()`` shows
    Patroni's view per node and as a whole."""
    dead = f"http://127.0.0.1:{free_port()}"
    leader = patroni_cluster.leader()
    template = leader.dsn.replace(f"@{leader.host}:{leader.port}/", "@/")
    config = RouterConfig.from_patroni([dead, *patroni_cluster.rest_urls], template)
    assert {n.name: n.port for n in config.all_nodes} == {
        n.name: n.port for n in patroni_cluster.nodes
    }
    assert config.patroni_urls == (dead, *patroni_cluster.rest_urls)
    async with AsyncRouter(config.replace(monitor_interval=0.1)) as rt:
        # The replica read first: after a read on the primary, monotonic reads may keep the
        # next one there until a replica is seen past that read's position.
        assert await rt.fetchval("SELECT inet_server_port()") in {
            n.port for n in patroni_cluster.replicas
        }
        assert await rt.fetchval("SELECT inet_server_port() /* router:primary */") == leader.port
        stats = rt.stats()
        assert stats["patroni"]["leader"] == leader.name
        assert stats["patroni"]["unmatched"] == []
        timeline = patroni_cluster.timeline()
        for node in patroni_cluster.nodes:
            seen = stats["nodes"][node.name]["patroni"]
            assert seen["member"] == node.name
            assert seen["role"] == ("leader" if node.name == leader.name else "replica")
            assert seen["timeline"] == timeline


def test_from_patroni_names_the_field_when_no_rest_api_answers() -> None:
    from router import ConfigurationError

    dead = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ConfigurationError) as caught:
        RouterConfig.from_patroni(dead, "postgresql://app:s3cret@/app", timeout=0.5)
    assert caught.value.field == "patroni_urls"
    assert dead in str(caught.value)
    assert "s3cret" not in str(caught.value)


@pytest.mark.asyncio
async def test_a_member_no_node_matches_is_named_once(
    patroni_cluster: PatroniCluster, caplog: pytest.LogCaptureFixture
) -> None:
    """Configured with two of the three members, the router warns once, naming the third."""
    caplog.set_level(logging.WARNING, "router")
    left_out = patroni_cluster.replicas[-1]
    nodes = [NodeConfig(dsn=n.dsn, name=n.name) for n in patroni_cluster.nodes if n != left_out]
    config = RouterConfig(
        nodes=nodes, patroni_urls=patroni_cluster.rest_urls, monitor_interval=0.05
    )
    async with AsyncRouter(config) as rt:
        rounds = rt.stats()["monitor_rounds"]
        await _until(lambda: rt.stats()["monitor_rounds"] >= rounds + 3, 10, "three rounds")
        assert rt.stats()["patroni"]["unmatched"] == [left_out.name]
    said = [r.getMessage() for r in caplog.records if "match no configured node" in r.getMessage()]
    assert len(said) == 1, said
    assert left_out.name in said[0]


def test_router_status_learns_the_members_from_patroni(patroni_cluster: PatroniCluster) -> None:
    """``router status --patroni URL TEMPLATE``: one row per member, Patroni's word beside
    the server's own, exit 0; without a template, exit 2 naming what is missing."""
    import json
    import subprocess
    import sys

    leader = patroni_cluster.leader()
    template = leader.dsn.replace(f"@{leader.host}:{leader.port}/", "@/")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ROUTER_")}

    def status(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "router.cli", "status", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env=clean,
        )

    done = status("--patroni", patroni_cluster.rest_urls[0], template, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    document = json.loads(done.stdout)
    rows = {node["name"]: node for node in document["nodes"]}
    assert set(rows) == {n.name for n in patroni_cluster.nodes}
    assert document["primary"] == leader.name
    assert rows[leader.name]["patroni"] == "leader/running"
    for replica in patroni_cluster.replicas:
        assert rows[replica.name]["role"] == "replica"
        assert rows[replica.name]["patroni"].startswith("replica/")
    table = status("--patroni", patroni_cluster.rest_urls[0], template)
    assert table.returncode == 0, table.stderr
    assert "patroni" in table.stdout.splitlines()[0]
    missing = status("--patroni", patroni_cluster.rest_urls[0])
    assert missing.returncode == 2
    assert "DSN template" in missing.stderr


def test_from_patroni_takes_router_options_from_the_template(
    patroni_cluster: PatroniCluster,
) -> None:
    """``router_*`` parameters of the template are options, as with ``from_url`` (keywords
    win); a wrong one is named as the user wrote it."""
    from router import ConfigurationError

    leader = patroni_cluster.leader()
    template = leader.dsn.replace(f"@{leader.host}:{leader.port}/", "@/")
    urls = patroni_cluster.rest_urls
    config = RouterConfig.from_patroni(
        urls, template + "?router_max_lag_seconds=1.5&router_policy=random", policy="round-robin"
    )
    assert config.max_lag_seconds == 1.5
    assert config.policy == "round-robin"
    assert len(config.all_nodes) == len(patroni_cluster.nodes)
    with pytest.raises(ConfigurationError) as caught:
        RouterConfig.from_patroni(urls, template + "?router_max_lag_secs=1")
    assert caught.value.field == "dsn: router_max_lag_secs"
