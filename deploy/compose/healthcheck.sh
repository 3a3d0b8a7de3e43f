#!/usr/bin/env bash
# Health of one node, for Docker's healthcheck: exit 0 when healthy, 1 when not.
#
#   healthcheck.sh primary   the server accepts connections (pg_isready). Asked over TCP
#                            on purpose: while the image runs its init scripts, its
#                            temporary server listens on the unix socket only, so the
#                            primary is not healthy before primary-init.sh has finished.
#   healthcheck.sh replica   the server is in recovery and its WAL receiver is streaming.
#
# Environment (default in brackets):
#   PGHOST                 the node's address [127.0.0.1]
#   PGPORT                 the node's port [5432]
#   POSTGRES_USER          the user to ask as; a superuser sees the WAL receiver [postgres]
#   POSTGRES_DB            the database to ask in [$POSTGRES_USER]
#   PGPASSWORD             that user's password, if the server asks for one [none]

set -euo pipefail

: "${PGHOST:=127.0.0.1}"
: "${PGPORT:=5432}"
: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
export PGHOST PGPORT

case ${1:-} in
    primary)
        pg_isready --quiet --timeout=5 --username="$POSTGRES_USER" --dbname="$POSTGRES_DB" || exit 1
        ;;
    replica)
        state=$(PGCONNECT_TIMEOUT=5 psql --no-psqlrc --no-password --tuples-only --no-align \
            --username="$POSTGRES_USER" --dbname="$POSTGRES_DB" --command \
            "SELECT pg_is_in_recovery()
                    AND EXISTS (SELECT FROM pg_stat_wal_receiver WHERE status = 'streaming')") ||
            exit 1
        [[ $state == t ]] || exit 1
        ;;
    *)
        printf 'usage: healthcheck.sh primary|replica\n' >&2
        exit 1
        ;;
esac
