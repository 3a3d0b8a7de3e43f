"""router.web on the real cluster, through real HTTP: the example marketplace under uvicorn
(3 worker processes) and the Flask variant under gunicorn (3 workers), driven with httpx.

Every request opens a new connection (``Connection: close``), so consecutive requests of one
client land on whichever worker accepts them: the tests count how many pairs crossed
processes. Where a read ran is what the server says (``inet_server_port()`` in the answer).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from functools import partial

import httpx
import psycopg
import pytest
from examples.marketplace.models import create_schema
from examples.marketplace.serving import SECRET, ports, router_url, serve

from router.core import Lsn, Position
from router.core import encode_token as encode
from router.testing import LocalCluster
from router.testing.pytest_plugin import ClusterDatabase
from router.web import Signer
from tests.support import wait_until

pytestmark = pytest.mark.integration

DELAY = 0.5
CLOSE = {"Connection": "close"}


@pytest.fixture(scope="module")
def url(cluster_db: ClusterDatabase) -> str:
    create_schema(cluster_db.router_config(), users=20, projects=200, notifications=200)
    for dsn in cluster_db.replica_dsns:
        wait_until(partial(_seeded, dsn), timeout=30, what="the seed on every replica")
    return router_url(cluster_db.cluster, cluster_db.name)


def _seeded(dsn: str) -> bool:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT to_regclass('public.notifications') IS NOT NULL").fetchone()
        if not (row and row[0]):
            return False
        count = conn.execute("SELECT count(*) FROM notifications").fetchone()
    return bool(count and count[0])


@pytest.fixture(scope="module")
def fastapi_server(url: str) -> Iterator[str]:
    with serve("fastapi", url, workers=3) as base:
        yield base


@pytest.fixture(scope="module")
def flask_server(url: str) -> Iterator[str]:
    with serve("flask", url, workers=3) as base:
        yield base


@pytest.fixture(params=["fastapi", "flask"])
def server(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_server"))


@pytest.fixture
def delayed(cluster: LocalCluster) -> LocalCluster:
    """Every replica applies WAL DELAY seconds late (undone after the test)."""
    for replica in cluster.replicas:
        cluster.set_apply_delay(replica, DELAY)
    return cluster


def system_id(cluster: LocalCluster) -> int:
    with cluster.primary.connect() as conn:
        row = conn.execute("SELECT system_identifier FROM pg_control_system()").fetchone()
    assert row is not None
    return int(row[0])


def primary_lsn(cluster: LocalCluster) -> Lsn:
    with cluster.primary.connect() as conn:
        row = conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()
    assert row is not None
    return Lsn.parse(row[0])


def follow(client: httpx.Client, response: httpx.Response) -> httpx.Response:
    assert response.status_code == 303, response.text
    return client.get(response.headers["location"], headers=CLOSE)


def write_then_read(client: httpx.Client, kind: str, round_: int) -> tuple[bool, int, int, int]:
    """One write and the read that follows it: (fresh, writer pid, reader pid, reader port)."""
    if kind == "project":
        posted = client.post("/projects", data={"title": f"p{round_}"}, headers=CLOSE)
        read = follow(client, posted)
        fresh = read.status_code == 200 and read.json()["title"] == f"p{round_}"
    elif kind == "notification":
        before = client.get("/notifications", headers=CLOSE).json()
        posted = client.post(f"/notifications/{before['first_unread']}/read", headers=CLOSE)
        read = follow(client, posted)
        fresh = read.status_code == 200 and read.json()["unread"] == before["unread"] - 1
    else:
        posted = client.post("/login", headers=CLOSE)
        read = follow(client, posted)
        fresh = read.status_code == 200
    port = read.json()["port"] if read.status_code == 200 else 0
    # The example app names the worker process of every answer, redirects included.
    return fresh, int(posted.headers["x-pid"]), int(read.headers["x-pid"]), port


# -- the promise ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["project", "notification", "login"])
def test_a_write_is_seen_by_the_next_request_on_any_worker_while_replicas_lag(
    server: str, delayed: LocalCluster, kind: str
) -> None:
    primary, _ = ports(delayed)
    crossed = on_primary = 0
    with httpx.Client(base_url=server, headers={"X-User": "3"}, timeout=10) as client:
        # At least 8 rounds, and on until a pair crossed worker processes (the kernel spreads
        # new connections over the workers; on a quiet box 8 may all land on one).
        for round_ in range(40):
            fresh, writer, reader, port = write_then_read(client, kind, round_)
            assert fresh, f"round {round_}: the read after the write did not see it"
            crossed += writer != reader
            on_primary += port == primary
            if round_ >= 7 and crossed:
                break
    assert crossed >= 1, "no pair of requests landed on two different worker processes"
    # The replicas are DELAY behind: only the primary has each write this soon (a replica
    # may have it when this box is slow enough; the rows above prove freshness either way).
    assert on_primary >= 4


def test_without_a_carrier_the_same_flow_reads_stale(url: str, delayed: LocalCluster) -> None:
    """The control: the same app with no middleware reads stale rows on other workers.

    Each round starts once every write so far has been applied on the replicas (2 x DELAY
    after the last one): a worker's router keeps its own reads at or past its own last commit
    (on the primary while the replicas lack it), so without the pause a worker that wrote a
    moment ago reads fresh on the primary, and on a fast box every worker has. The read after
    each write then goes to a worker whose own commits are on the replicas: one that did not
    take the write reads the replica, DELAY behind, and misses it."""
    stale = 0
    with (
        serve("fastapi", url, workers=3, mode="none") as base,
        httpx.Client(base_url=base, headers={"X-User": "4"}, timeout=10) as client,
    ):
        for round_ in range(12):
            time.sleep(2 * DELAY)  # the scenario's spacing, not a wait for a result
            fresh, writer, reader, _ = write_then_read(client, "project", round_)
            stale += not fresh and writer != reader
            if stale:
                break
    assert stale >= 1


def test_other_clients_and_later_reads_stay_on_replicas(server: str, delayed: LocalCluster) -> None:
    primary, replicas = ports(delayed)
    with (
        httpx.Client(base_url=server, headers={"X-User": "5"}, timeout=10) as writer,
        httpx.Client(base_url=server, headers={"X-User": "6"}, timeout=10) as other,
    ):
        posted = writer.post("/projects", data={"title": "w"}, headers=CLOSE)
        assert "router_position=" in posted.headers["set-cookie"]
        assert follow(writer, posted).json()["port"] == primary
        # Meanwhile another user (no position) reads from replicas, on every worker.
        seen = {other.get(path, headers=CLOSE).json()["port"] for path in ["/projects"] * 6}
        assert seen <= replicas
        # Once the replicas replayed the write, the writer's reads go there too, and the
        # position, no longer needed, is dropped.
        lsn = primary_lsn(delayed)
        _replayed_everywhere(delayed, lsn)

        def on_a_replica() -> httpx.Response | None:
            r = writer.get("/which", headers=CLOSE)
            return r if r.json()["port"] in replicas else None

        later = wait_until(
            on_a_replica,
            timeout=20,
            what="the writer's reads back on a replica",
        )
        assert later.json()["port"] in replicas
        wait_until(
            lambda: writer.get("/which", headers=CLOSE) and "router_position" not in writer.cookies,
            timeout=20,
            what="the position dropped (Max-Age=0)",
        )


def _replayed_everywhere(cluster: LocalCluster, lsn: Lsn) -> None:
    def replayed() -> bool:
        for replica in cluster.replicas:
            with replica.connect() as conn:
                row = conn.execute("SELECT pg_last_wal_replay_lsn()::text").fetchone()
            if row is None or Lsn.parse(row[0]) < lsn:
                return False
        return True

    wait_until(replayed, timeout=10, what="every replica replayed the write")


# -- bad carriers --------------------------------------------------------------------------


def _bad_cookies(cluster: LocalCluster) -> dict[str, str]:
    sid = system_id(cluster)
    now = int(time.time())
    signer = Signer(SECRET)
    far = Lsn(primary_lsn(cluster) + (1 << 40))
    return {
        "forged": Signer("someone-else-entirely-0123").sign(encode(Position(sid, far)), now),
        "foreign": signer.sign(encode(Position(sid ^ 0xFFFF, far)), now),
        "malformed": "r1.%%%.garbage",
        "not ours": signer.sign("r1.AAAAAAAAAAAAAAAAAAAAAAAAAAA", now),
        "far ahead": signer.sign(encode(Position(sid, far)), now - 30),
        "expired": signer.sign(encode(Position(sid, far)), now - 3600),
        "huge": "x" * 4000,
    }


@pytest.mark.parametrize(
    "bad", ["forged", "foreign", "malformed", "not ours", "far ahead", "expired", "huge"]
)
def test_a_bad_position_is_ignored_safely(server: str, cluster: LocalCluster, bad: str) -> None:
    """Never an error page, never the primary for every read: the read runs on a replica
    and the bad cookie is dropped."""
    _, replicas = ports(cluster)
    value = _bad_cookies(cluster)[bad]
    for _ in range(3):
        reply = httpx.get(
            f"{server}/projects", headers={**CLOSE, "Cookie": f"router_position={value}"}
        )
        assert reply.status_code == 200
        assert reply.json()["port"] in replicas
        assert "router_position=; Max-Age=0" in reply.headers["set-cookie"]


def test_a_bad_header_is_ignored_safely(server: str, cluster: LocalCluster) -> None:
    _, replicas = ports(cluster)
    reply = httpx.get(
        f"{server}/projects",
        headers={**CLOSE, "Router-Position": _bad_cookies(cluster)["forged"]},
    )
    assert reply.status_code == 200
    assert reply.json()["port"] in replicas
    assert reply.headers["router-position"] == ""


# -- the carrier's attributes --------------------------------------------------------------


def test_the_cookie_attributes(server: str, cluster: LocalCluster) -> None:
    reply = httpx.post(f"{server}/projects", data={"title": "c"}, headers=CLOSE)
    [cookie] = [c for c in reply.headers.get_list("set-cookie") if "router_position" in c]
    name_value, *attributes = cookie.split("; ")
    assert name_value.startswith("router_position=r1.")
    assert attributes == ["Max-Age=60", "Path=/", "HttpOnly", "SameSite=Lax"]
    # Behind a TLS-terminating proxy on loopback (trusted by both servers by default).
    secure = httpx.post(
        f"{server}/projects",
        data={"title": "c"},
        headers={**CLOSE, "X-Forwarded-Proto": "https"},
    )
    [cookie] = [c for c in secure.headers.get_list("set-cookie") if "router_position" in c]
    assert cookie.split("; ")[1:] == ["Max-Age=60", "Path=/", "Secure", "HttpOnly", "SameSite=Lax"]
    # A read-only request sets no position.
    assert "set-cookie" not in httpx.get(f"{server}/projects", headers=CLOSE).headers


def test_an_api_client_carries_the_position_in_a_header(server: str, delayed: LocalCluster) -> None:
    primary, _ = ports(delayed)
    with httpx.Client(base_url=server, headers={"X-User": "7"}, timeout=10) as client:
        for round_ in range(4):
            posted = client.post(
                "/projects", data={"title": f"h{round_}"}, headers={**CLOSE, "Router-Position": ""}
            )
            position = posted.headers["router-position"]
            assert position.startswith("r1.")
            assert (
                "set-cookie" not in posted.headers
                or "router_position" not in posted.headers["set-cookie"]
            )
            read = httpx.get(
                f"{server}{posted.headers['location']}",
                headers={**CLOSE, "Router-Position": position},
            )
            assert read.status_code == 200
            assert read.json()["port"] == primary
