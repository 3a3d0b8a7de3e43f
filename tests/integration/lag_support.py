"""A replica caught up but for WAL without commits, on a real cluster: the case where its time
lag, measured from its last replayed commit, is overstated at first sight (see
``router.core._confirm``). The replica is kept from receiving WAL (its ``primary_conninfo``
emptied) until it has answered a check, so that check surely sees it behind: what the server
saw, not a timing guess."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql

from router._sync._monitor import CHECK_QUERY
from router.testing import LocalCluster, Node
from tests.support import wait_until

__all__ = ["behind_without_commits", "reconnected_after_first_check", "scalar"]


def scalar(node: Node, query: str, *args: Any) -> Any:
    with psycopg.connect(node.dsn, autocommit=True) as conn:
        row = conn.execute(query, args or None).fetchone()
        assert row is not None
        return row[0]


@contextmanager
def behind_without_commits(
    cluster: LocalCluster, replica: Node, mark: float
) -> Iterator[Callable[[], None]]:
    """*replica* cut off from the primary, its last replayed commit over *mark* seconds old,
    and the primary past it by WAL without a commit (a checkpoint). Yields ``reconnect``;
    reconnects at the end in any case and waits until the replica streams and has caught up."""
    with psycopg.connect(cluster.primary.dsn, autocommit=True) as conn:
        # A commit for the replica to have replayed (a bare txid_current() leaves no
        # timestamp: it writes no WAL but its commit record).
        conn.execute("CREATE TABLE IF NOT EXISTS first_sight (n int)")
        conn.execute("INSERT INTO first_sight VALUES (1)")
    cluster.wait_caught_up(replica)
    conninfo = scalar(replica, "SHOW primary_conninfo")
    done = threading.Event()

    def reconnect() -> None:
        if done.is_set():
            return
        done.set()
        with psycopg.connect(replica.dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("ALTER SYSTEM SET primary_conninfo = {}").format(sql.Literal(conninfo))
            )
            conn.execute("SELECT pg_reload_conf()")

    with psycopg.connect(replica.dsn, autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET primary_conninfo = ''")
        conn.execute("SELECT pg_reload_conf()")
    try:
        wait_until(
            lambda: scalar(replica, "SELECT count(*) FROM pg_stat_wal_receiver") == 0,
            what=f"{replica.name} to stop receiving WAL",
        )
        age = "SELECT extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp())"
        wait_until(
            lambda: scalar(replica, age) > mark + 0.5,
            what="the last replayed commit to be older than the re-admit mark",
        )
        with psycopg.connect(cluster.primary.dsn, autocommit=True) as conn:
            conn.execute("CHECKPOINT")
        position = scalar(cluster.primary, "SELECT pg_current_wal_lsn()::text")
        behind = "SELECT pg_last_wal_replay_lsn() < %s::pg_lsn"
        assert scalar(replica, behind, position), "the checkpoint did not move the primary"
        yield reconnect
    finally:
        reconnect()
        wait_until(
            lambda: scalar(replica, "SELECT count(*) FROM pg_stat_wal_receiver") == 1,
            what=f"{replica.name} to stream again",
        )
        cluster.wait_caught_up(replica)


@contextmanager
def reconnected_after_first_check(
    replica: Node, reconnect: Callable[[], None], application_name: str
) -> Iterator[None]:
    """Reconnect *replica* as soon as the server shows a monitor's check answered there: a
    connection of ``{application_name} monitor`` idle after ``CHECK_QUERY`` (psycopg's monitor
    sends it within a ``BEGIN; SET LOCAL ...; COMMIT`` string)."""
    stop = threading.Event()
    query = (
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
        " AND state = 'idle' AND strpos(query, %s) > 0"
        # Not a monitor of an earlier test, on its way out.
        " AND backend_start > (SELECT backend_start FROM pg_stat_activity"
        " WHERE pid = pg_backend_pid())"
    )

    # Connected here, before the caller opens its router: the filter on backend_start above
    # takes every monitor connection opened after this one for the caller's. (Connected in
    # the thread, a loaded machine once let the router's monitor connect first: its check was
    # taken for an earlier test's, the replica was never reconnected in time, and the router
    # rightly read from the other replica only.)
    conn = psycopg.connect(replica.dsn, autocommit=True)

    def watch() -> None:
        with conn:
            while not stop.is_set():
                row = conn.execute(
                    query, (f"{application_name} monitor", CHECK_QUERY.strip())
                ).fetchone()
                if row is not None and row[0]:
                    reconnect()
                    return
                stop.wait(0.005)

    try:
        thread = threading.Thread(target=watch, name="reconnect-after-first-check")
        thread.start()
    except BaseException:
        conn.close()
        raise
    try:
        yield
    finally:
        stop.set()
        thread.join()
