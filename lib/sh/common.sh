# shellcheck shell=bash
# pulumi-bdr host library: sourced (prepended) by every step script, after the step's values
# (PG_BIN, PG_RUN, PG_PORT, PG_DB, PG_OS_USER, PGPASSFILE), which it checks first.
#
# - as_pg CMD...: run a command as the server's OS user (directly, with setpriv as root, runuser
#   when setpriv is missing, or sudo -n -u otherwise); as_pg_session: the same through runuser's
#   PAM session when root (daemons);
# - sql_local [DB [PSQL-ARGS...]]: the SQL on stdin on this host's server through its Unix socket,
#   unaligned and tuples-only (-At), stopping at the first error;
# - sql_peer CONNINFO [PSQL-ARGS...]: the same against a peer, authenticated through PGPASSFILE;
# - log MSG: a line on stderr;
# - daemon CMD...: start a daemon as the server's OS user with a clean, explicit environment
#   (PATH, LANG, HOME, PGPASSFILE): nothing of whoever ran `pulumi up` reaches it;
# - read_secrets: reads KEY=<base64> lines from stdin into shell variables SECRET_KEY; secrets
#   never appear on a command line or in the script text;
# - safe_write PATH MODE: writes stdin to PATH as the server's OS user, through a file that user
#   creates with mktemp beside PATH, then renamed over it (never a predictable name, never root
#   writing in a directory another user owns); status 0 when PATH changed, 1 when it already held
#   that content; a failed write ends the script with status 1 even inside `if` or `||`;
# - install_packages PKG...: installs with apt-get the Debian packages that are missing (nothing
#   when every one is installed); the one routine every step that installs packages uses.
#
# Here-document policy (every file in lib/sh): TypeScript never writes a here-document; values
# and rendered files reach the scripts as single-quoted shell assignments (or data lines), and
# the scripts use only quoted here-documents (`<<'SQL'`), never expanded ones.
set -euo pipefail
# The last command of a pipeline runs in this shell: `printf … | safe_write …` can end the script.
shopt -s lastpipe
umask 077
# Nothing of the caller's libpq environment (PGPASSWORD, PGHOST, …) steers the scripts' psql.
# (The step's own values above are plain shell variables; only exported ones are listed.)
while read -r pg_var; do
  case "$pg_var" in PG_BIN | PG_RUN | PG_PORT | PG_DB | PG_OS_USER | PGPASSFILE) ;; *) unset "$pg_var" ;; esac
done < <(compgen -e | grep "^PG" || true)
cd /
log() { printf "%s\n" "$*" >&2; }
# The step's values, checked before anything uses them.
case "${PG_BIN:-}" in /*) ;; *) log "PG_BIN must be an absolute path, got '${PG_BIN:-}'"; exit 1 ;; esac
case "${PG_RUN:-}" in /*) ;; *) log "PG_RUN must be an absolute path, got '${PG_RUN:-}'"; exit 1 ;; esac
case "${PGPASSFILE:-}" in /*) ;; *) log "PGPASSFILE must be an absolute path, got '${PGPASSFILE:-}'"; exit 1 ;; esac
[[ "${PG_PORT:-}" =~ ^[1-9][0-9]{0,4}$ ]] || { log "PG_PORT must be a port number, got '${PG_PORT:-}'"; exit 1; }
[ -n "${PG_DB:-}" ] || { log "PG_DB must not be empty"; exit 1; }
[[ "${PG_OS_USER:-}" =~ ^[a-z_][a-z0-9_-]{0,31}$ ]] || { log "PG_OS_USER must be an OS user name, got '${PG_OS_USER:-}'"; exit 1; }
export PGPASSFILE
export PGCONNECT_TIMEOUT=10
# How as_pg changes user, decided once: "self" (already the server's user), "setpriv" (root:
# setpriv from util-linux switches uid, gid and groups with no PAM session: ~10 ms against
# runuser's ~30-100 ms, and a step calls as_pg dozens of times), "runuser" (root without setpriv),
# "sudo" (any other user). Daemons always start through runuser's PAM session (see daemon).
if [ "$(id -un)" = "$PG_OS_USER" ]; then PG_AS=self
elif [ "$(id -u)" = 0 ]; then
  if command -v setpriv >/dev/null 2>&1; then PG_AS=setpriv; else PG_AS=runuser; fi
else PG_AS=sudo; fi
as_pg() {
  case $PG_AS in
  self) "$@" ;;
  setpriv) setpriv --reuid="$PG_OS_USER" --regid="$PG_OS_USER" --init-groups -- "$@" ;;
  runuser) runuser -u "$PG_OS_USER" -- "$@" ;;
  *) sudo -n -u "$PG_OS_USER" -- "$@" ;;
  esac
}
# as_pg_session CMD...: as_pg, through runuser's PAM session (limits) when root.
as_pg_session() {
  case $PG_AS in
  setpriv | runuser) runuser -u "$PG_OS_USER" -- "$@" ;;
  *) as_pg "$@" ;;
  esac
}
sql_local() {
  local db="${1:-$PG_DB}"; [ "$#" -eq 0 ] || shift
  as_pg env PGPASSFILE="$PGPASSFILE" PGCONNECT_TIMEOUT=10 "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$PG_RUN" -p "$PG_PORT" -d "$db" "$@"
}
read_secrets() {
  local line k v
  while IFS= read -r line; do
    k=${line%%=*}; v=${line#*=}
    [ -n "$k" ] && [ "$k" != "$line" ] || continue
    v=$(printf "%s" "$v" | base64 -d) || { log "read_secrets: $k is not valid base64"; return 1; }
    printf -v "SECRET_$k" "%s" "$v"
  done
}
sql_peer() {
  local dsn=$1; shift
  as_pg env PGPASSFILE="$PGPASSFILE" PGCONNECT_TIMEOUT=10 "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d "$dsn" "$@"
}
daemon() { as_pg_session env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 HOME=/ PGPASSFILE="$PGPASSFILE" "$@"; }
safe_write() {
  local target=$1 mode=$2 rc=0
  # One process as the server's user: mktemp beside the target, write, compare, chmod, rename.
  # Its status: 0 replaced, 1 same content, 3 no temporary file, 4 write failed, 5 replace failed.
  # shellcheck disable=SC2016 # the program's variables expand in the inner sh
  as_pg sh -c '
    t=$(mktemp "$1.XXXXXX") || exit 3
    if ! cat >"$t"; then rm -f "$t"; exit 4; fi
    if cmp -s "$t" "$1"; then rm -f "$t"; exit 1; fi
    if chmod "$2" "$t" && mv -f "$t" "$1"; then exit 0; fi
    rm -f "$t"; exit 5' sh "$target" "$mode" || rc=$?
  case $rc in
  0) return 0 ;;
  1) return 1 ;;
  3) log "cannot create a temporary file beside $target"; exit 1 ;;
  4) log "cannot write $target"; exit 1 ;;
  *) log "cannot replace $target"; exit 1 ;;
  esac
}
install_packages() {
  local p missing=()
  for p in "$@"; do
    [[ "$p" =~ ^[a-z0-9][a-z0-9.+-]*$ ]] || { log "install_packages: not a Debian package name: '$p'"; exit 1; }
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ "${#missing[@]}" -gt 0 ] || return 0
  log "installing: ${missing[*]}"
  # stdin from /dev/null: apt must never read the step's stdin (the secret lines).
  DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null
}
