"""libpq connection strings, as asyncpg understands them.

The configuration speaks libpq (URLs or ``key=value``, as psycopg and ``psql`` do); asyncpg
takes only URLs and sends every query parameter it does not know as a server setting. So the
DSN is rebuilt as a URL, keeping what asyncpg knows or the server accepts at start-up and
leaving out libpq's client-side options (timeouts and keepalives are the router's business).
"""

from __future__ import annotations

from typing import Final
from urllib.parse import quote, urlencode

from psycopg.conninfo import conninfo_to_dict

__all__ = ["asyncpg_dsn"]

#: Understood by asyncpg itself.
_ASYNCPG: Final = frozenset(
    {
        "passfile",
        "sslmode",
        "sslcert",
        "sslkey",
        "sslrootcert",
        "sslcrl",
        "sslpassword",
        "ssl_min_protocol_version",
        "ssl_max_protocol_version",
        "krbsrvname",
        "gsslib",
    }
)
#: Sent in the start-up packet, which the server accepts.
_STARTUP: Final = frozenset({"application_name", "options"})


def asyncpg_dsn(conninfo: str) -> str:
    """A ``postgresql://`` URL asyncpg accepts for the libpq *conninfo* (URL or key=value)."""
    params = {k: str(v) for k, v in conninfo_to_dict(conninfo).items() if v is not None}
    host = params.pop("host", "") or params.pop("hostaddr", "")
    params.pop("hostaddr", None)
    if host.startswith("/"):  # a Unix socket directory goes in the query, as asyncpg wants
        params["host"] = host
        host = ""
    elif ":" in host:
        host = f"[{host}]"
    port = params.pop("port", "")
    user = params.pop("user", "")
    password = params.pop("password", "")
    dbname = params.pop("dbname", "")
    auth = quote(user, safe="")
    if password:
        auth += ":" + quote(password, safe="")
    netloc = (auth + "@" if auth else "") + host + (f":{port}" if port else "")
    query = {k: v for k, v in params.items() if k in _ASYNCPG or k in _STARTUP or k == "host"}
    tail = "?" + urlencode(sorted(query.items())) if query else ""
    return f"postgresql://{netloc}/{quote(dbname, safe='')}{tail}"
