"""The quickstart, run by the wheel test in a clean virtual environment outside the checkout.

Prints one JSON line: where `router` was imported from, the server version, and the ports that
served each read (a replica's, proven by the server's own ``inet_server_port()``).
"""

from __future__ import annotations

import asyncio
import json
import time

import router
from router.testing import LocalCluster, router_config


def _replica_read(fetchval: object, replica_ports: set[int]) -> int:
    # A read after a write goes to the primary until the monitor sees a replica past it.
    deadline = time.monotonic() + 30
    while True:
        port = int(fetchval("SELECT inet_server_port()"))  # type: ignore[operator]
        if port in replica_ports or time.monotonic() > deadline:
            return port
        time.sleep(0.05)


async def _async_part(config: router.RouterConfig, replica_ports: set[int]) -> dict[str, object]:
    async with router.AsyncRouter(config) as db:
        await db.execute("INSERT INTO notes (body) VALUES ($1)", "async")
        bodies = sorted(r["body"] for r in await db.fetch("SELECT body FROM notes"))
        deadline = time.monotonic() + 30
        while True:
            port = int(await db.fetchval("SELECT inet_server_port()"))
            if port in replica_ports or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        return {"async_bodies": bodies, "async_read_port": port}


def main() -> None:
    with LocalCluster(replicas=1) as cluster:
        replica_ports = {r.port for r in cluster.replicas}
        config = router_config(cluster)
        with router.Router(config) as db:
            db.execute("CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL)")
            db.execute("INSERT INTO notes (body) VALUES (%s)", ("sync",))
            sync_bodies = [r[0] for r in db.fetch("SELECT body FROM notes")]
            sync_port = _replica_read(db.fetchval, replica_ports)
            version = db.fetchval("SHOW server_version")
        result = {
            "router_file": router.__file__,
            "server_version": version,
            "primary_port": cluster.primary.port,
            "replica_ports": sorted(replica_ports),
            "sync_bodies": sync_bodies,
            "sync_read_port": sync_port,
            **asyncio.run(_async_part(config, replica_ports)),
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
