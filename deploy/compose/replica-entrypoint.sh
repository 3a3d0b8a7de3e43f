#!/usr/bin/env bash
# Entrypoint of the replica. On first start (no PG_VERSION in $PGDATA) wait for the
# primary and clone it with `pg_basebackup -R -X stream -S $REPLICATION_SLOT`, which also
# writes the standby configuration (standby.signal, primary_conninfo, primary_slot_name).
# On later starts the data directory is used as it is. Then run the given command, which
# starts the server as a streaming standby: in the container the image's own
# `docker-entrypoint.sh postgres ...`; on a plain machine e.g. `postgres -D "$PGDATA"`.
#
# Started as root (as in the container) it prepares $PGDATA and carries on as $PG_OS_USER
# via gosu, which the official image ships; started as anyone else it just runs.
#
# Environment (default in brackets):
#   PGDATA                 the replica's data directory [/var/lib/postgresql/data]
#   PRIMARY_HOST           the primary's host name or address [primary]
#   PRIMARY_PORT           the primary's port [5432]
#   REPLICATION_USER       role to replicate as [replicator]
#   REPLICATION_PASSWORD   its password; kept in primary_conninfo for later starts
#                          [replicator-change-me]
#   REPLICATION_SLOT       the primary's physical slot to stream from [replica1]
#   REPLICA_NAME           application_name the primary sees [$REPLICATION_SLOT]
#   PRIMARY_WAIT_SECONDS   how long to wait for the primary to accept connections [120]
#   PG_OS_USER             the OS user to become when started as root [postgres]

set -euo pipefail

: "${PGDATA:=/var/lib/postgresql/data}"
: "${PRIMARY_HOST:=primary}"
: "${PRIMARY_PORT:=5432}"
: "${REPLICATION_USER:=replicator}"
: "${REPLICATION_PASSWORD:=replicator-change-me}"
: "${REPLICATION_SLOT:=replica1}"
: "${REPLICA_NAME:=$REPLICATION_SLOT}"
: "${PRIMARY_WAIT_SECONDS:=120}"
: "${PG_OS_USER:=postgres}"
export PGDATA

log() { printf 'replica-entrypoint: %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

[[ $# -gt 0 ]] || die "usage: replica-entrypoint.sh COMMAND [ARG...]  (the server to start)"

if [[ $(id -u) -eq 0 ]]; then
    # PostgreSQL refuses to run as root, and the volume may still belong to root.
    mkdir -p "$PGDATA"
    find "$PGDATA" \! -user "$PG_OS_USER" -exec chown "$PG_OS_USER" '{}' +
    chmod 700 "$PGDATA"
    command -v gosu >/dev/null || die "running as root and gosu is missing: run as $PG_OS_USER"
    exec gosu "$PG_OS_USER" "${BASH_SOURCE[0]}" "$@"
fi

# A libpq connection-string value, quoted: conninfo_value "it's" -> 'it\'s'.
conninfo_value() {
    local v=${1//\\/\\\\}
    printf "'%s'" "${v//\'/\\\'}"
}

wait_for_primary() {
    local deadline=$((SECONDS + PRIMARY_WAIT_SECONDS))
    until pg_isready --quiet --timeout=5 --host="$PRIMARY_HOST" --port="$PRIMARY_PORT"; do
        ((SECONDS < deadline)) ||
            die "the primary at $PRIMARY_HOST:$PRIMARY_PORT did not accept connections within ${PRIMARY_WAIT_SECONDS}s"
        sleep 1
    done
}

if [[ -s $PGDATA/PG_VERSION ]]; then
    log "$PGDATA already holds a replica; starting it"
else
    # A directory with files but no PG_VERSION is not ours to wipe (a wrong PGDATA, or a
    # clone cut short): say so rather than guess.
    if [[ -d $PGDATA && -n $(ls -A "$PGDATA") ]]; then
        die "$PGDATA is not empty but holds no PG_VERSION; empty it to clone the primary again"
    fi
    log "waiting for the primary at $PRIMARY_HOST:$PRIMARY_PORT"
    wait_for_primary
    log "cloning the primary into $PGDATA (slot $REPLICATION_SLOT, as $REPLICATION_USER)"
    conninfo="host=$(conninfo_value "$PRIMARY_HOST") port=$(conninfo_value "$PRIMARY_PORT")"
    conninfo+=" user=$(conninfo_value "$REPLICATION_USER")"
    conninfo+=" application_name=$(conninfo_value "$REPLICA_NAME")"
    # The password reaches pg_basebackup through its environment only, never its argv.
    PGPASSWORD=$REPLICATION_PASSWORD pg_basebackup --pgdata="$PGDATA" --dbname="$conninfo" \
        --write-recovery-conf --wal-method=stream --slot="$REPLICATION_SLOT" --checkpoint=fast
    # The server refuses a data directory that others may read.
    chmod 700 "$PGDATA"
    log "cloned; starting the replica"
fi

unset REPLICATION_PASSWORD
exec "$@"
