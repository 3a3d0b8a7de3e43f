"""SQLAlchemy 2 session factories that route: reads on replicas, writes on the primary.

::

    import router
    from router.sqlalchemy import async_sessionmaker, sessionmaker

    config = router.RouterConfig.from_url("postgresql://app:secret@db1,db2,db3/app")

    Session = sessionmaker(config)                      # psycopg 3, sync
    with Session() as session:
        user = session.get(User, 1)                     # a replica
        user.name = "ada"
        session.commit()                                # the primary
        session.get(User, 1)                            # a replica that has it, or the primary
        token = session.token()                         # ... for another process:
    with Session(after=token) as other: ...             # sees the commit too
    with Session(readonly=True) as report: ...          # one replica; a write raises
    Session.close()

    AsyncSession = async_sessionmaker(config)           # asyncpg: the same, awaited
    async with AsyncSession() as session: ...
    await AsyncSession.aclose()

Inside a session transaction, reads run on one node chosen at the first read; after the first
write (a flush, DML, ``FOR UPDATE``, a volatile function) everything runs on the primary until
the transaction ends. After a transaction that wrote commits, the session's later reads go only
to replicas that have replayed that commit. ``session.last_decision`` says where the latest
statement ran and why; ``Session.router.stats()`` counts the decisions. Per statement (or in
``session.execute(..., execution_options=...)``): ``router_primary=True`` runs it on the
primary, ``postgresql_readonly=True`` refuses it if it writes.

Limits: nothing is retried inside SQLAlchemy (an error reaches the caller; a lost connection is
reported to the router's monitor at once), reads never wait for a replica to catch up
(``ryw_wait`` is not used: a replica behind the session's floor is skipped), session state
(``SET``, temp tables) is not kept across transactions (SQLAlchemy returns connections to the
pool when a transaction ends), and a replica refuses ``SERIALIZABLE``: use ``primary=True``
for such sessions.
"""

from __future__ import annotations

from router.sqlalchemy._factory import (
    RoutedAsyncSessionmaker,
    RoutedSessionmaker,
    async_sessionmaker,
    sessionmaker,
)
from router.sqlalchemy._session import (
    PRIMARY_OPTION,
    READONLY_OPTION,
    RoutedAsyncSession,
    RoutedSession,
)

__all__ = [
    "PRIMARY_OPTION",
    "READONLY_OPTION",
    "RoutedAsyncSession",
    "RoutedAsyncSessionmaker",
    "RoutedSession",
    "RoutedSessionmaker",
    "async_sessionmaker",
    "sessionmaker",
]
