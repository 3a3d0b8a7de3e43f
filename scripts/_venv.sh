# Sourced by the scripts here: make .venv (once) and install the project with the given extras.
# Usage: . scripts/_venv.sh EXTRAS     (EXTRAS like "dev" or "" for none)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ ! -x .venv/bin/python ]; then
    "${PYTHON:-python3}" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
# The distribution was called `router` until it became pg-replica-router: an older .venv still
# holds that editable install, whose entry points would register the pytest plugin twice.
if .venv/bin/python -m pip show router 2>/dev/null | grep -qx "Editable project location: $PWD"; then
    .venv/bin/python -m pip uninstall --quiet --yes router
fi
spec="."
if [ -n "${1:-}" ]; then spec=".[$1]"; fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$spec"
