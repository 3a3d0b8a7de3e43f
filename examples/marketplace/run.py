"""One command for the example: schema + seed on the cluster, then the app under a real server.

::

    router cluster up
    python examples/marketplace/run.py            # FastAPI under uvicorn, 3 workers, :8000
    python examples/marketplace/run.py --flask    # Flask under gunicorn, 3 workers

``ROUTER_URL`` defaults to the cluster ``router cluster up`` started; ``MARKET_SECRET`` to a
random secret for this run (set one of your own, shared by every process of the app).
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flask", action="store_true", help="the Flask variant under gunicorn")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()

    env = dict(os.environ)
    if "ROUTER_URL" not in env:
        router = shutil.which("router") or str(Path(sys.executable).with_name("router"))
        url = subprocess.run(
            [router, "cluster", "url"], capture_output=True, text=True, check=False
        )
        if url.returncode != 0:
            print(url.stderr.strip() or "no cluster: run `router cluster up`", file=sys.stderr)
            return 1
        env["ROUTER_URL"] = url.stdout.strip()
    env.setdefault("MARKET_SECRET", secrets.token_urlsafe(32))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))

    sys.path.insert(0, str(ROOT))
    os.environ.update({k: v for k, v in env.items() if k.startswith("ROUTER_")})
    from examples.marketplace.models import create_schema  # noqa: PLC0415 (needs sys.path)
    from router import RouterConfig  # noqa: PLC0415

    create_schema(RouterConfig.from_env())
    bind = f"{args.host}:{args.port}"
    if args.flask:
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "-w",
            str(args.workers),
            "-b",
            bind,
            "examples.marketplace.flask_app:app",
        ]
    else:
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "--workers",
            str(args.workers),
            "--host",
            args.host,
            "--port",
            str(args.port),
            "examples.marketplace.fastapi_app:app",
        ]
    print(f"http://{bind}/projects  (Ctrl-C stops)", flush=True)
    return subprocess.call(command, env=env, cwd=ROOT)


if __name__ == "__main__":
    raise SystemExit(main())
