"""Patroni's REST API, read with the standard library (no HTTP client dependency).

Blocking calls, run in a worker thread by the async monitor and in the monitor's own
threads by the sync one.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

__all__ = ["fetch_cluster"]


def fetch_cluster(url: str, timeout: float) -> Any:
    """The decoded body of ``GET {url}/cluster``. Raises ``OSError`` (unreachable, HTTP error,
    timeout) or ``ValueError`` (not JSON)."""
    request = urllib.request.Request(
        url.rstrip("/") + "/cluster", headers={"Accept": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read(1 << 20))
