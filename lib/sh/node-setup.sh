# shellcheck shell=bash
# pulumi-bdr node setup: the replication role with the cluster-wide SCRAM verifier (the same on
# every node, so PgBouncer's auth works after a switchover) and the database. Sourced after
# common.sh; functions only. The engine's node script (extension, local node) follows the call.
#
# Values:
#   N_REPL_USER  the replication role (LOGIN SUPERUSER REPLICATION)
#   (PG_DB, from the preamble: the database, owned by N_REPL_USER)
# Secret (stdin, read_secrets): SECRET_VERIFIER, a SCRAM-SHA-256 verifier; it reaches psql on its
# stdin, never on a command line.
#
# Entry point: node_setup. Idempotent.

node_setup() {
  read_secrets
  case "${SECRET_VERIFIER:-}" in SCRAM-SHA-256\$*) ;; *) log "the role verifier is not a SCRAM-SHA-256 verifier"; exit 1 ;; esac
  {
    printf '\\set verifier %s\n' "'$SECRET_VERIFIER'"
    cat <<'SQL'
SELECT format('CREATE ROLE %I WITH LOGIN SUPERUSER REPLICATION', :'user') WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'user') \gexec
SELECT format('ALTER ROLE %I WITH LOGIN SUPERUSER REPLICATION PASSWORD %L', :'user', :'verifier') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'user') WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db') \gexec
SQL
  } | sql_local postgres -v user="$N_REPL_USER" -v db="$PG_DB" >/dev/null
}
