#!/usr/bin/env bash
# Prepare a primary for one streaming replica: a replication role with its own password,
# a pg_hba.conf line letting that role replicate, and a physical replication slot; then
# reload the configuration. Safe to run again (nothing is duplicated).
#
# In the container the official postgres image runs this once, from
# /docker-entrypoint-initdb.d/, on an empty data directory, as the postgres OS user, while
# its temporary server listens on the unix socket. On a plain machine run it the same way:
# on the server's machine, as an OS user that may write the server's pg_hba.conf (it asks
# the server where that file is).
#
# Environment (default in brackets):
#   POSTGRES_USER          superuser to connect as [postgres]
#   POSTGRES_DB            database to connect to [$POSTGRES_USER]
#   PGHOST, PGPORT         where psql finds the server [libpq's: the local unix socket, 5432]
#   PGPASSWORD             the superuser's password, when the server asks for one [none]
#   REPLICATION_USER       role the replica connects as; never a superuser [replicator]
#   REPLICATION_PASSWORD   that role's password [replicator-change-me]
#   REPLICATION_SLOT       physical replication slot for the replica [replica1]
#   REPLICATION_HBA_ADDRESS  where the replica may connect from, as pg_hba.conf says it
#                          [samenet: any address on a network the server is attached to]
#   REPLICATION_HBA_METHOD   how it authenticates [scram-sha-256]

# The image *sources* an init script that has lost its executable bit; run in a shell of
# our own then, so that our `set -u` and `exit` stay out of the image's entrypoint.
if [[ "${BASH_SOURCE[0]}" != "$0" ]]; then
    bash "${BASH_SOURCE[0]}"
    return
fi

set -euo pipefail

: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
: "${REPLICATION_USER:=replicator}"
: "${REPLICATION_PASSWORD:=replicator-change-me}"
: "${REPLICATION_SLOT:=replica1}"
: "${REPLICATION_HBA_ADDRESS:=samenet}"
: "${REPLICATION_HBA_METHOD:=scram-sha-256}"
export REPLICATION_PASSWORD # read by psql's \getenv below, so it never sits in an argv

log() { printf 'primary-init: %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# Plain names keep the pg_hba.conf line and the SQL free of quoting surprises.
[[ $REPLICATION_USER =~ ^[a-z_][a-z0-9_]{0,62}$ ]] ||
    die "REPLICATION_USER must be a lower-case SQL name (letters, digits, _): '$REPLICATION_USER'"
[[ $REPLICATION_SLOT =~ ^[a-z0-9_]{1,63}$ ]] ||
    die "REPLICATION_SLOT may hold only lower-case letters, digits and _: '$REPLICATION_SLOT'"
[[ $REPLICATION_USER != "$POSTGRES_USER" ]] ||
    die "REPLICATION_USER must not be the superuser POSTGRES_USER ('$POSTGRES_USER')"
[[ -n $REPLICATION_PASSWORD ]] || die "REPLICATION_PASSWORD must not be empty"

psql_() {
    psql --no-psqlrc --no-password --quiet --set ON_ERROR_STOP=1 \
        --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" "$@"
}

role_state=$(psql_ --tuples-only --no-align --set role="$REPLICATION_USER" <<'SQL'
SELECT CASE WHEN rolsuper THEN 'superuser' ELSE 'exists' END
  FROM pg_roles WHERE rolname = :'role';
SQL
)
case $role_state in
    superuser) die "role '$REPLICATION_USER' exists and is a superuser; pick another REPLICATION_USER" ;;
    exists) verb=ALTER outcome=updated ;;
    *) verb=CREATE outcome=created ;;
esac

hba_file=$(psql_ --tuples-only --no-align --command 'SHOW hba_file')
[[ -w $hba_file ]] || die "cannot write $hba_file as $(id -un): run this as the server's OS user"
hba_line="host replication $REPLICATION_USER $REPLICATION_HBA_ADDRESS $REPLICATION_HBA_METHOD"
if grep -qxF -- "$hba_line" "$hba_file"; then
    log "pg_hba.conf already lets $REPLICATION_USER replicate"
else
    printf '\n# streaming replica (deploy/compose/primary-init.sh)\n%s\n' "$hba_line" >>"$hba_file"
    log "pg_hba.conf: added '$hba_line'"
fi

# VERBOSITY terse: an error message never quotes the statement that carries the password.
psql_ --output=/dev/null \
    --set role="$REPLICATION_USER" --set slot="$REPLICATION_SLOT" --set verb="$verb" <<'SQL'
\set VERBOSITY terse
\getenv password REPLICATION_PASSWORD
:verb ROLE :"role" WITH LOGIN REPLICATION NOSUPERUSER PASSWORD :'password';
\unset password
-- Reserve WAL from now on, so nothing the replica needs is recycled before it first connects.
SELECT pg_create_physical_replication_slot(:'slot', immediately_reserve => true)
 WHERE NOT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = :'slot');
SELECT pg_reload_conf();
SQL
log "role $REPLICATION_USER $outcome (not a superuser); slot $REPLICATION_SLOT ready"

hba_errors=$(psql_ --tuples-only --no-align --command \
    "SELECT string_agg(format('line %s: %s', line_number, error), '; ')
       FROM pg_hba_file_rules WHERE error IS NOT NULL")
[[ -z $hba_errors ]] || die "the server rejects $hba_file: $hba_errors"
log "configuration reloaded"
