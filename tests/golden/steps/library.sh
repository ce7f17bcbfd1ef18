# ==== lib/sh/common.sh ====
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
# ==== lib/sh/drain.sh ====
# shellcheck shell=bash
# pulumi-bdr drain: waits until peers have applied what one node committed. Sourced after
# common.sh; functions only. Used by the proxy (switchover, hand-off) and by the pglogical part.
#
# Values:
#   DRAIN_MARK_SQL     the engine's SQL run on the source node: commits a replicated marker and
#                      prints one LSN, at or after the commit of every transaction the node
#                      committed before (lib/engines/types.ts drainProgressSql)
#   DRAIN_APPLIED_SQL  the engine's SQL run on a target node once the settings
#                      pulumi_bdr.drain_source (the source's node name), pulumi_bdr.drain_lsn and
#                      pulumi_bdr.drain_seconds are set: returns once the target has applied the
#                      source's changes up to that LSN, fails when that takes longer than the seconds
#
# Why not the engine's wait_slot_confirm_lsn: it waits for the peers' *flush feedback*, which an
# idle apply worker sends late (7-18 s after a write burst, BENCHMARKS.md); the peers' replication
# origins show what they have applied the moment they commit it (a few ms here).
#
# drain_to SECONDS SOURCE SOURCE_DSN [TARGET TARGET_DSN]...: SOURCE_DSN "" is this host's own
# server (sql_local). All targets are asked in parallel, each bounded by SECONDS (a whole number).
# Status: 0 when every reachable target applied the changes; 1 when a target failed or timed out;
# 2 when the source is unreachable (nothing marked). DRAIN_UNREACHED and DRAIN_FAILED list the
# targets that could not be asked (psql exit 2: connection) or that failed; DRAIN_MS is the time
# the wait took (from the marker on).
#
# In two phases, for a caller that must keep the wait itself short (the pause switchover):
# drain_prepare (same arguments) starts one psql session per node, connected ahead of time, each
# reading its SQL later from a fifo; drain_run sends the marker and the waits and collects the
# results (drain_to's status); drain_abort ends prepared sessions that will not run.
DRAIN_UNREACHED=()
DRAIN_FAILED=()
DRAIN_MS=0
DRAIN_DIR=""
DRAIN_SOURCE=""
DRAIN_SECS=0
DRAIN_NAMES=()
DRAIN_PIDS=()
DRAIN_FDS=()
drain_now_ms() { date +%s%3N; }
# drain_session INDEX DSN [PSQL-ARGS...]: a psql session on DSN ("" = this host's server) whose
# stdin is the fifo $DRAIN_DIR/INDEX.in, kept open for writing in DRAIN_FDS[INDEX]. Every input
# ends with \q, so a session never waits for an end of file that a copy of the fifo's write end
# (inherited by a sibling or any other child) would hold back.
drain_session() {
  local i=$1 dsn=$2 fd f
  shift 2
  mkfifo -m 0600 "$DRAIN_DIR/$i.in"
  (
    for f in "${DRAIN_FDS[@]}"; do if [ -n "$f" ]; then exec {f}>&-; fi; done
    if [ -z "$dsn" ]; then
      sql_local "$PG_DB" "$@" <"$DRAIN_DIR/$i.in" >"$DRAIN_DIR/$i.out" 2>"$DRAIN_DIR/$i.err"
    else
      sql_peer "$dsn" "$@" <"$DRAIN_DIR/$i.in" >"$DRAIN_DIR/$i.out" 2>"$DRAIN_DIR/$i.err"
    fi
  ) &
  DRAIN_PIDS[i]=$!
  exec {fd}>"$DRAIN_DIR/$i.in"
  DRAIN_FDS[i]=$fd
}
# drain_feed INDEX TEXT: the session's whole input and \q, then end of input (a session that
# already ended, e.g. could not connect, is skipped: no SIGPIPE reaches this shell)
drain_feed() {
  local fd=${DRAIN_FDS[$1]}
  [ -n "$fd" ] || return 0
  (printf '%s\n\\q\n' "$2" >&"$fd") 2>/dev/null || true
  exec {fd}>&-
  DRAIN_FDS[$1]=""
}
drain_abort() {
  local i
  for i in "${!DRAIN_FDS[@]}"; do drain_feed "$i" ""; done
  for i in "${!DRAIN_PIDS[@]}"; do wait "${DRAIN_PIDS[$i]}" 2>/dev/null || true; done
  DRAIN_FDS=()
  DRAIN_PIDS=()
  if [ -n "$DRAIN_DIR" ]; then rm -rf -- "$DRAIN_DIR"; fi
  DRAIN_DIR=""
}
drain_prepare() {
  local i=1
  DRAIN_SECS=$1 DRAIN_SOURCE=$2
  [[ "$DRAIN_SECS" =~ ^[1-9][0-9]{0,5}$ ]] || { log "drain: SECONDS must be a positive whole number, got '$DRAIN_SECS'"; return 1; }
  if [ -n "$DRAIN_DIR" ]; then drain_abort; fi
  DRAIN_DIR=$(mktemp -d) || return 1
  DRAIN_NAMES=()
  DRAIN_PIDS=()
  DRAIN_FDS=()
  drain_session 0 "$3"
  shift 3
  while [ "$#" -ge 2 ]; do
    DRAIN_NAMES[i]=$1
    drain_session "$i" "$2" -v source="$DRAIN_SOURCE" -v secs="$DRAIN_SECS"
    i=$((i + 1))
    shift 2
  done
}
drain_run() {
  local lsn rc=0 start i
  DRAIN_UNREACHED=()
  DRAIN_FAILED=()
  DRAIN_MS=0
  start=$(drain_now_ms)
  drain_feed 0 "$(printf "SET statement_timeout = '%ss';\n%s" "$DRAIN_SECS" "$DRAIN_MARK_SQL")"
  wait "${DRAIN_PIDS[0]}" || rc=$?
  lsn=$(tail -n1 "$DRAIN_DIR/0.out" 2>/dev/null || true)
  if [ "$rc" = 2 ]; then log "drain: $DRAIN_SOURCE is unreachable: nothing marked"; drain_abort; return 2; fi
  if [ "$rc" != 0 ]; then
    log "drain: the marker on $DRAIN_SOURCE failed (psql exit $rc): $(tail -n3 "$DRAIN_DIR/0.err" 2>/dev/null)"
    drain_abort
    return 1
  fi
  if ! [[ "$lsn" =~ ^[0-9A-F]+/[0-9A-F]+$ ]]; then log "drain: the marker on $DRAIN_SOURCE printed no LSN: '$lsn'"; drain_abort; return 1; fi
  for i in "${!DRAIN_NAMES[@]}"; do
    # The LSN matched the pattern above: safe as a psql variable's value.
    drain_feed "$i" "\\set lsn '$lsn'
SELECT pg_catalog.set_config('pulumi_bdr.drain_source', :'source', false),
  pg_catalog.set_config('pulumi_bdr.drain_lsn', :'lsn', false),
  pg_catalog.set_config('pulumi_bdr.drain_seconds', :'secs', false),
  pg_catalog.set_config('statement_timeout', ((:'secs')::int + 5) || 's', false);
$DRAIN_APPLIED_SQL"
  done
  for i in "${!DRAIN_NAMES[@]}"; do
    rc=0
    wait "${DRAIN_PIDS[$i]}" || rc=$?
    case $rc in
    0) ;;
    2) DRAIN_UNREACHED+=("${DRAIN_NAMES[$i]}") ;;
    *)
      DRAIN_FAILED+=("${DRAIN_NAMES[$i]}")
      log "drain: ${DRAIN_NAMES[$i]}: $(tail -n3 "$DRAIN_DIR/$i.err" 2>/dev/null)"
      ;;
    esac
  done
  DRAIN_MS=$(($(drain_now_ms) - start))
  DRAIN_PIDS=()
  drain_abort
  if [ "${#DRAIN_UNREACHED[@]}" -gt 0 ]; then log "drain: unreachable, not drained: ${DRAIN_UNREACHED[*]}"; fi
  if [ "${#DRAIN_FAILED[@]}" -gt 0 ]; then
    log "drain: ${DRAIN_FAILED[*]} did not apply the changes of $DRAIN_SOURCE up to $lsn"
    return 1
  fi
  log "drain: ${#DRAIN_NAMES[@]} peer(s) applied the changes of $DRAIN_SOURCE up to $lsn in ${DRAIN_MS} ms"
}
drain_to() {
  drain_prepare "$@" || return 1
  drain_run
}
# ==== lib/sh/forget-peers.sh ====
# shellcheck shell=bash
# pulumi-bdr forget on peers: runs on the runner (the machine that runs `pulumi up`) as the delete
# of a node's `<join>-forget` step: every surviving peer runs the `forget` operation of a bundle,
# each through its own transport, all peers at once; a peer that fails is reported and the
# others still run. The same text whatever the cluster size: the peers come as data lines.
#
# Value: FP_LEAVING, the leaving node's name (messages).
# stdin: one data line per peer, fields separated by tabs, then the line `--end-of-peers--`, then
# the bundle (lib/hosts/bundle.ts) whose `forget` operation runs on each peer:
#   local  NAME ARGS...                         bash -s -- forget ARGS... on the runner
#   remote NAME HOST PORT USER KEYVAR SUDO ARGS...  over OpenSSH, the key from the environment
#                                               variable KEYVAR; SUDO=1: sudo -n in front
#   docker NAME DAEMON CONTAINER ARGS...        docker -H DAEMON exec -i CONTAINER, skipped when
#                                               the container is not running
# ARGS are the peer's forget arguments (lib/hosts/bundle.ts forgetArgs).
# Entry point: forget_on_peers (always exits 0). Needs ssh-run.sh (sourced before it).
set -uo pipefail

# run_on_peer OP BUNDLE FIELDS...: runs the bundle's operation OP on one host, reached through
# the transport of its data line's fields (also guard-probe.sh's `probe`).
run_on_peer() {
  local op=$1 bundle=$2 kind=$3 h c
  shift 4
  case "$kind" in
    local)
      printf '%s\n' "$bundle" | bash -s -- "$op" "$@"
      ;;
    remote)
      local host=$1 port=$2 user=$3 keyvar=$4 sudo=$5
      shift 5
      printf '%s\n' "$bundle" | ssh_bash "$host" "$port" "$user" "$keyvar" "$sudo" "$op" "$@"
      ;;
    docker)
      h=$1 c=$2
      shift 2
      if [ "$(docker -H "$h" inspect --type container -f '{{.State.Running}}' "$c" 2>/dev/null)" = true ]; then
        printf '%s\n' "$bundle" | docker -H "$h" exec -i "$c" bash -s -- "$op" "$@"
      elif docker -H "$h" inspect --type container "$c" >/dev/null 2>&1; then
        echo "pulumi-bdr: container $c is not running: nothing to do in it" >&2
      fi
      ;;
    *)
      echo "pulumi-bdr: unknown peer transport '$kind'" >&2
      return 1
      ;;
  esac
}
# forget_on_peer BUNDLE FIELDS...: runs the bundle's forget on one peer (fields of its data line).
forget_on_peer() { run_on_peer forget "$@"; }

forget_on_peers() {
  local line bundle fields
  local peers=()
  # The SSH keys stay shell variables of this script: no child process inherits them.
  ssh_keys_private
  while IFS= read -r line && [ "$line" != "--end-of-peers--" ]; do
    [ -z "$line" ] || peers+=("$line")
  done
  bundle=$(cat)
  # Every peer at once (each through its own transport); a failure only warns.
  local pids=() names=() i
  for line in "${peers[@]}"; do
    IFS=$'\t' read -r -a fields <<<"$line"
    forget_on_peer "$bundle" "${fields[@]}" </dev/null &
    pids+=("$!")
    names+=("${fields[1]:-?}")
  done
  for i in "${!pids[@]}"; do
    if ! wait "${pids[$i]}"; then
      echo "pulumi-bdr: WARNING: peer ${names[$i]} could not forget node $FP_LEAVING" >&2
    fi
  done
  exit 0
}
# ==== lib/sh/guard-probe.sh ====
# shellcheck shell=bash
# pulumi-bdr process guards, runner side: asks every host of a cluster for its guard token
# (guard.sh guard_probe), all hosts in parallel, in one run. The program runs this through the
# command provider's `local.run` on every preview and up (lib/hosts/probe.ts), so a process that
# died behind Pulumi's back shows up as a change of its host's guard without a refresh.
#
# stdin: per host two lines: a data line in forget-peers.sh's format without ARGS (`local NAME`,
# `remote NAME HOST PORT USER KEYVAR SUDO` or `docker NAME DAEMON CONTAINER`), then the host's
# bundle (lib/hosts/bundle.ts, whose `probe` operation runs on the host) in base64 on one line.
# stdout: per host, in input order, `NAME<TAB>TOKEN<TAB>FRESH`: its token or, when the host could not be
# asked (no SSH connection, no running container, no answer), a fresh word `u<nanoseconds>` each
# time: it never equals a stored token, so the guard shows a change for as long as the host cannot
# be asked, and the ensure that runs once it can (a container recreated by `up --refresh`) stores
# that word; FRESH is 1 when the host reported its node's data directory never initialized, else
# 0 (also for a host that could not be asked). The hosts' messages are dropped. Always exits 0.
# Needs ssh-run.sh and forget-peers.sh (sourced before it).
set -uo pipefail

# guard_probe_one OUTFILE BUNDLE FIELDS...: the token of one host into OUTFILE, then a tab and 1
# when the host reported its node fresh (`pulumi-bdr-guard-fresh=1`: a data directory never
# initialized), else 0
guard_probe_one() {
  local outfile=$1 bundle=$2 out token fresh=0
  shift 2
  out=$(run_on_peer probe "$bundle" "$@" 2>/dev/null </dev/null) || true
  token=$(printf '%s\n' "$out" | sed -n 's/^pulumi-bdr-guard-token=\([A-Za-z0-9]\{1,32\}\)$/\1/p' | tail -n 1)
  if [ -n "$token" ] && [[ $'\n'"$out"$'\n' == *$'\npulumi-bdr-guard-fresh=1\n'* ]]; then fresh=1; fi
  printf '%s\t%s\n' "${token:-u$(date +%s%N)}" "$fresh" >"$outfile"
}

guard_probe_hosts() {
  local line b64 bundle dir i=0 n fields names=() pids=()
  # The SSH keys stay shell variables of this script: no child process inherits them.
  ssh_keys_private
  dir=$(mktemp -d) || exit 1
  while IFS= read -r line && IFS= read -r b64; do
    [ -n "$line" ] || continue
    IFS=$'\t' read -r -a fields <<<"$line"
    names+=("${fields[1]:-?}")
    bundle=$(printf '%s' "$b64" | base64 -d 2>/dev/null) || bundle=""
    guard_probe_one "$dir/$i" "$bundle" "${fields[@]}" &
    pids+=("$!")
    i=$((i + 1))
  done
  for n in "${!pids[@]}"; do wait "${pids[$n]}" || true; done
  for n in "${!names[@]}"; do
    printf '%s\t%s\n' "${names[$n]}" "$(cat "$dir/$n" 2>/dev/null || printf 'u%s\t0' "$(date +%s%N)")"
  done
  rm -rf -- "$dir"
  exit 0
}
# ==== lib/sh/guard.sh ====
# shellcheck shell=bash
# pulumi-bdr process guards, host side (after common.sh and the library whose probe and ensure
# functions it wraps: node-server.sh or proxy.sh). See lib/hosts/probe.ts.
#
# A guard is a step whose ensure script carries the host's guard *token*. The program asks the
# host for it on every preview and up (guard_probe, through the command provider's `local.run`):
# the stored token while every watched process runs, the next number when one is down. A new token
# changes the guard's script, so the preview shows the guard updating and the up runs its ensure
# (guard_ensure), which starts what is down and then stores that token: the next probe agrees with
# the state again, and a healthy cluster previews with no change.
#
# guard_probe FILE FN: the stored token (FILE) while FN (a probe) exits 0, the next number when it
# fails, printed as `pulumi-bdr-guard-token=<token>`; always status 0; changes nothing.
guard_probe() {
  local file=$1 fn=$2 rc=0 t=""
  ("$fn") >&2 || rc=$?
  if [ -r "$file" ]; then IFS= read -r t <"$file" || true; fi
  case "$t" in "" | *[!A-Za-z0-9]*) t=0 ;; esac
  if [ "$rc" -ne 0 ]; then
    [[ "$t" =~ ^(0|[1-9][0-9]{0,8})$ ]] || t=0
    t=$((t + 1))
  fi
  printf 'pulumi-bdr-guard-token=%s\n' "$t"
}
# guard_ensure FILE TOKEN FN: runs FN (starts what is down), then stores TOKEN in FILE.
guard_ensure() {
  local file=$1 token=$2 fn=$3 rc=0
  [[ "$token" =~ ^[A-Za-z0-9]{1,32}$ ]] || { log "guard token must be 1-32 letters or digits, got '$token'"; exit 1; }
  ("$fn") || rc=$?
  [ "$rc" -eq 0 ] || exit "$rc"
  printf '%s\n' "$token" | safe_write "$file" 0600 || true
}
# ==== lib/sh/node-config.sh ====
# shellcheck shell=bash
# pulumi-bdr node config: writes a node's files and applies them (reload, or a restart when a
# setting needs one). Sourced after common.sh and node-server.sh; functions only.
#
# Values:
#   N_DATA            the data directory
#   N_SETTINGS_FILE   path of our settings file (included from postgresql.conf)
#   N_SETTINGS_TEXT   its rendered content
#   N_HBA_TEXT        the whole pg_hba.conf
#   N_OPL_FILE        path of the output_plugin_libraries fragment
#   N_OUTPUT_PLUGINS  array: the engine's output plugins (empty: no fragment is managed)
#   N_PROXY_TEXT      optional: the proxy's hand-off script (lib/proxy/scripts.ts
#                     proxyHandoffScript: the proxy's values, common.sh, proxy.sh), present when
#                     the proxy runs on this machine; empty or unset: no hand-off
# Secret (stdin, read_secrets): SECRET_PGPASS, the .pgpass content.
# Hook: node_after_restart (see node-server.sh) runs after a restart.
#
# Entry points:
#   node_write_files  .pgpass, the settings file, pg_hba.conf, the include line and the
#                     output_plugin_libraries fragment; CHANGED=1 when a file the server reads
#                     changed (the .pgpass is read at each connection and does not count).
#   server_config     reads the secrets, writes the files, starts a stopped server, reloads on a
#                     change and restarts when pg_settings has a pending restart; with N_PROXY_TEXT,
#                     writes move off the node through the proxy before the restart and come back
#                     after it (only when it takes writes). Idempotent.
#   write_output_plugins FILE POSTGRES DATA LIB...: see below.

CHANGED=0
# put_file PATH MODE: safe_write (atomic, as the server's OS user; a failed write ends the
# script) that sets CHANGED=1 when PATH changed.
put_file() { if safe_write "$1" "$2"; then CHANGED=1; fi; }

# write_output_plugins FILE POSTGRES DATA LIB...: PostgreSQL 15.19+ (16.15+, 17.11+, 18.6+) only
# let output plugins named in output_plugin_libraries be used. Asks the server binary
# (`postgres -D DATA -C output_plugin_libraries`, as the server's OS user); when it knows the
# setting, FILE gets `output_plugin_libraries = '<current list>, <missing LIBs>'` (additive: the
# default `pgoutput, test_decoding` stays); otherwise a file with the header only, so the
# `include_if_exists` stays harmless. Rewritten only when its content changes. Reloadable.
write_output_plugins() {
  local file=$1 postgres=$2 data=$3 current list="" item lib quoted text
  local header="# Managed by pulumi-bdr: do not edit, changes are overwritten on the next \`pulumi up\`."
  shift 3
  for lib in "$@"; do
    [[ "$lib" =~ ^[A-Za-z0-9_]+$ ]] || { log "write_output_plugins: bad library name '$lib'"; exit 1; }
  done
  if current=$(as_pg "$postgres" -D "$data" -C output_plugin_libraries 2>/dev/null); then
    local items=()
    IFS=',' read -r -a items <<<"$current"
    for item in "${items[@]}"; do
      item="${item#"${item%%[![:space:]]*}"}"; item="${item%"${item##*[![:space:]]}"}"
      if [ -n "$item" ]; then list="${list:+$list, }$item"; fi
    done
    for lib in "$@"; do
      case ", $list, " in *", $lib, "*) ;; *) list="${list:+$list, }$lib" ;; esac
    done
    quoted="${list//\\/\\\\}"; quoted="${quoted//\'/\'\'}"
    text=$(printf '%s\n%s' "$header" "output_plugin_libraries = '$quoted'")
    log "output_plugin_libraries = '$list'"
  else
    text=$header
    log "server has no output_plugin_libraries setting: nothing to allow"
  fi
  printf '%s\n' "$text" | safe_write "$file" 0644 || true
}

node_write_files() {
  local include_line opl_before
  # The password file does not need a reload: it is read at each connection.
  printf "%s" "$SECRET_PGPASS" | put_file "$PGPASSFILE" 600
  CHANGED=0
  printf "%s" "$N_SETTINGS_TEXT" | put_file "$N_SETTINGS_FILE" 600
  printf "%s" "$N_HBA_TEXT" | put_file "$N_DATA/pg_hba.conf" 600
  include_line="include_if_exists = '$(basename "$N_SETTINGS_FILE")'"
  if ! as_pg grep -qxF "$include_line" "$N_DATA/postgresql.conf"; then
    printf '\n%s\n' "$include_line" | as_pg tee -a "$N_DATA/postgresql.conf" >/dev/null
    CHANGED=1
  fi
  if [ "${#N_OUTPUT_PLUGINS[@]}" -gt 0 ]; then
    opl_before=$(opl_sum)
    write_output_plugins "$N_OPL_FILE" "$PG_BIN/postgres" "$N_DATA" "${N_OUTPUT_PLUGINS[@]}"
    [ "$opl_before" = "$(opl_sum)" ] || CHANGED=1
  fi
}
opl_sum() { { cat "$N_OPL_FILE" 2>/dev/null || true; } | cksum; }

# proxy_handoff_run away|back: the proxy's hand-off for this node (lib/sh/proxy.sh
# proxy_handoff), a separate bash with the proxy's own values; nothing without N_PROXY_TEXT. The
# script comes through a pipe (never an argument); stdin stays free of it.
proxy_handoff_run() {
  if [ -z "${N_PROXY_TEXT:-}" ]; then return 0; fi
  bash <(printf '%s' "$N_PROXY_TEXT") "$1" "$N_NAME" </dev/null
}

server_config() {
  local t0 pending
  read_secrets
  node_write_files
  if ! pg_running; then pg_start; pg_wait_ready; proxy_handoff_run back; exit 0; fi
  if [ "$CHANGED" = 1 ]; then
    t0=$(echo 'SELECT pg_conf_load_time()' | sql_local postgres)
    echo 'SELECT pg_reload_conf()' | sql_local postgres >/dev/null
    # Wait until the postmaster has re-read the files (new sessions see the new load time).
    for _ in $(seq 1 100); do
      [ "$(printf 'SELECT pg_conf_load_time() > %s::timestamptz' "'$t0'" | sql_local postgres)" = t ] && break
      sleep 0.05
    done
  fi
  # Also catches a restart that an interrupted earlier run left pending.
  pending=$(echo "SELECT string_agg(name, ',' ORDER BY name) FROM pg_settings WHERE pending_restart" | sql_local postgres)
  if [ -n "$pending" ]; then
    log "restarting for: $pending"
    # Writes leave the node first (when it takes them): clients see a switchover, not a restart.
    proxy_handoff_run away || log "hand-off of $N_NAME failed: restarting it with writes on it (clients see a failover)"
    pg_restart
    pg_wait_ready
    run_after_restart
  fi
  # After the restart, or one an interrupted run left: writes come back (nothing when not moved).
  proxy_handoff_run back
}
# ==== lib/sh/node-server.sh ====
# shellcheck shell=bash
# pulumi-bdr node server: create, delete, guard probe and guard ensure of a node's PostgreSQL.
# Sourced after common.sh (and node-config.sh for server_create); functions only.
#
# Values (set before, by the step's values section):
#   N_NAME     the node's name (messages)
#   N_DIR      the node's own directory (private, removed by server_delete)
#   N_DATA     its data directory (inside N_DIR)
#   N_MAJOR    PostgreSQL major version (messages)
#   N_PACKAGES array of Debian packages to install when missing (empty: install nothing)
#   N_WATCHER  1 when the engine has a replication watcher (then watch-ctl.sh is sourced too and,
#              for server_create and server_ensure, N_WATCH_TEXT holds its file); unset or 0: none
#   and for server_create the values of node-config.sh.
# Hook: node_after_restart, when defined (the engine's after-restart body), runs after the guard
# started a stopped server or found one its container restarted.
#
# Entry points:
#   server_create  packages, directories, initdb when the data directory is empty, the files
#                  (node_write_files), then start, then the watcher (when configured). Reads
#                  SECRET_PGPASS from stdin. Idempotent.
#   server_delete  stops the watcher (when configured) and the server, removes N_DIR (and its
#                  parent when empty). Idempotent.
#   server_probe   exit 0 when the postmaster runs, no container restart awaits a wake-up and the
#                  watcher (when configured) runs.
#   server_ensure  starts a stopped server (and wakes the peers) and the watcher (when configured);
#                  nothing when both run.

# The file the docker image's entrypoint leaves in the run directory when it started PostgreSQL.
N_RESTART_MARKER=restarted-by-entrypoint
# The file server_create leaves in the run directory before initdb; the node's join step removes
# it when it starts (lib/cluster/create.ts). While it exists the node holds nothing of its own.
N_FRESH_MARKER=never-joined

# pg_running: the server runs. `pg_ctl status` alone trusts the PID in postmaster.pid: after a
# kill -9 another process may hold that PID by now (PIDs wrap within minutes on a busy machine),
# so the PID must also be a PostgreSQL server process (checked as the server's user, who can read
# /proc/PID/exe of its own processes only).
pg_running() {
  as_pg "$PG_BIN/pg_ctl" -D "$N_DATA" status >/dev/null 2>&1 && pg_pid_is_postgres
}
pg_pid_is_postgres() {
  local pid exe
  pid=$(as_pg head -n 1 "$N_DATA/postmaster.pid" 2>/dev/null) || return 1
  [[ "$pid" =~ ^[1-9][0-9]{0,9}$ ]] || return 1
  exe=$(as_pg readlink "/proc/$pid/exe" 2>/dev/null) || return 1
  [ "${exe% (deleted)}" = "$(readlink -f "$PG_BIN/postgres")" ]
}
pg_start() {
  # PostgreSQL refuses to start while the PID in a leftover postmaster.pid is alive, whoever has it.
  if as_pg test -e "$N_DATA/postmaster.pid" && ! pg_pid_is_postgres; then
    log "node $N_NAME: removing postmaster.pid of a server that is gone (its PID is not a PostgreSQL process)"
    as_pg rm -f "$N_DATA/postmaster.pid"
  fi
  daemon "$PG_BIN/pg_ctl" -D "$N_DATA" -l "$PG_RUN/server.log" -w -t 120 start >/dev/null || { tail -n 20 "$PG_RUN/server.log" >&2; exit 1; }
}
pg_restart() {
  daemon "$PG_BIN/pg_ctl" -D "$N_DATA" -l "$PG_RUN/server.log" -m fast -w -t 120 restart >/dev/null || { tail -n 20 "$PG_RUN/server.log" >&2; exit 1; }
}
pg_wait_ready() {
  for _ in $(seq 1 600); do "$PG_BIN/pg_isready" -q -h "$PG_RUN" -p "$PG_PORT" && return 0; sleep 0.1; done
  log "server on port $PG_PORT did not accept connections within 60 s"; return 1
}
# run_after_restart: the engine's hook, when the step defines one.
run_after_restart() {
  if declare -F node_after_restart >/dev/null; then node_after_restart; fi
}
# has_watcher: the engine has a replication watcher (watch-ctl.sh's functions are defined).
has_watcher() { [ "${N_WATCHER:-0}" = 1 ]; }

server_create() {
  read_secrets
  if [ "${#N_PACKAGES[@]}" -gt 0 ]; then install_packages "${N_PACKAGES[@]}"; fi
  [ -x "$PG_BIN/postgres" ] || { log "PostgreSQL binaries not found in $PG_BIN: install the postgresql-$N_MAJOR package"; exit 1; }
  id -u "$PG_OS_USER" >/dev/null 2>&1 || { log "OS user $PG_OS_USER does not exist (it comes with the postgresql package)"; exit 1; }
  # Parents must stay traversable by the server's user; the node's own directory is private.
  (umask 022; mkdir -p "$N_DIR")
  [ "$(id -u)" != 0 ] || chown "$PG_OS_USER" "$N_DIR"
  chmod 700 "$N_DIR"
  as_pg mkdir -p "$N_DATA" "$PG_RUN"
  if [ ! -s "$N_DATA/PG_VERSION" ]; then
    as_pg touch "$PG_RUN/$N_FRESH_MARKER"
    as_pg "$PG_BIN/initdb" -D "$N_DATA" -E UTF8 --locale=C.UTF-8 --auth-local=peer --auth-host=scram-sha-256 >/dev/null
  fi
  node_write_files
  pg_running || pg_start
  pg_wait_ready
  if has_watcher; then watch_ensure; fi
}

server_delete() {
  if has_watcher; then watch_stop; fi
  # Immediate: the data directory is removed right after, so the shutdown checkpoint of a fast
  # stop would write (and fsync) what is deleted next.
  if [ -d "$N_DATA" ] && as_pg "$PG_BIN/pg_ctl" -D "$N_DATA" status >/dev/null 2>&1; then
    as_pg "$PG_BIN/pg_ctl" -D "$N_DATA" -m immediate -w -t 120 stop >/dev/null
  fi
  rm -rf "$N_DIR"
  rmdir "$(dirname "$N_DIR")" 2>/dev/null || true
}

server_probe() {
  if pg_running && [ ! -e "$PG_RUN/$N_RESTART_MARKER" ]; then
    if has_watcher && ! watch_pid >/dev/null; then log "node $N_NAME: its replication watcher is not running"; exit 1; fi
    exit 0
  fi
  if pg_running; then log "PostgreSQL of node $N_NAME was restarted by its container: peers need a wake-up"; exit 1; fi
  log "PostgreSQL of node $N_NAME (port $PG_PORT) is not running"
  exit 1
}

# server_fresh: prints `pulumi-bdr-guard-fresh=1` while the node holds nothing yet: its data
# directory was never initialized, or its server step initialized it and its join has not started
# (N_FRESH_MARKER; so the answer does not depend on whether the probe ran before or after this
# `up`'s initdb). When all nodes are fresh the program runs their config steps in parallel
# (lib/cluster/plan.ts freshDependsOn).
server_fresh() {
  if [ ! -s "$N_DATA/PG_VERSION" ] || [ -e "$PG_RUN/$N_FRESH_MARKER" ]; then
    printf 'pulumi-bdr-guard-fresh=1\n'
  fi
}

server_ensure() {
  # A container's entrypoint that left the marker is starting the server itself: give it 5 s.
  if [ -e "$PG_RUN/$N_RESTART_MARKER" ]; then
    for _ in $(seq 1 50); do
      pg_running && break
      sleep 0.1
    done
  fi
  if pg_running; then
    if [ -e "$PG_RUN/$N_RESTART_MARKER" ]; then
      log "node $N_NAME: PostgreSQL was restarted by its container: waking the peers"
      # The entrypoint leaves the marker before it starts the server, which may still be in
      # crash recovery: the peers are woken once it accepts connections.
      pg_wait_ready
      if has_watcher; then watch_ensure; fi
      run_after_restart
      as_pg rm -f "$PG_RUN/$N_RESTART_MARKER"
    elif has_watcher; then
      watch_ensure
    fi
    exit 0
  fi
  if ! as_pg test -s "$N_DATA/PG_VERSION"; then
    log "node $N_NAME: no data directory at $N_DATA: the server step must run again (pulumi up --replace on its server resource)"
    exit 1
  fi
  log "node $N_NAME: PostgreSQL (port $PG_PORT) was not running: starting it"
  pg_start
  pg_wait_ready
  if has_watcher; then watch_ensure; fi
  run_after_restart
  as_pg rm -f "$PG_RUN/$N_RESTART_MARKER"
}
# ==== lib/sh/node-setup.sh ====
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
# ==== lib/sh/pglogical-join.sh ====
# shellcheck shell=bash
# pglogical: a node joins the group through the join target.
#
# The same text for every node and every cluster size: the values come from the data lines the
# engine puts before it (J_NODE, J_DSN, J_TARGET, J_TARGET_DSN, J_TIMEOUT, J_FRESH_SQL and the arrays
# J_EARLIER_NAMES / J_EARLIER_DSNS: every node that joined before this one, in join order, the
# join target included). SQL gets them as psql variables (`:'x'`); DO blocks, where psql does not
# substitute, read them back with current_setting('pulumi_bdr.x').
# Needs the preamble library (sql_local, sql_peer, log), lib/sh/drain.sh (drain_to, with the
# engine's DRAIN_MARK_SQL / DRAIN_APPLIED_SQL) and lib/sh/pglogical-wake.sh (wake_manager_start).
# Waits that do not depend on each other (one per earlier node) run in parallel: only the genuine
# ordering constraints stay serial.
: "${J_NODE:?}" "${J_DSN:?}" "${J_TARGET:?}" "${J_TARGET_DSN:?}" "${J_TIMEOUT:?}" "${J_FRESH_SQL:?}"
case "$J_TIMEOUT" in '' | *[!0-9]*) log "pglogical join: J_TIMEOUT must be a number of seconds"; exit 1 ;; esac
if [ "${#J_EARLIER_NAMES[@]}" -eq 0 ] || [ "${#J_EARLIER_NAMES[@]}" -ne "${#J_EARLIER_DSNS[@]}" ]; then
  log "pglogical join: the earlier nodes' names and DSNs do not match"
  exit 1
fi
for n in "$J_NODE" "$J_TARGET" "${J_EARLIER_NAMES[@]}"; do
  [[ "$n" =~ ^[a-z][a-z0-9_]{0,23}$ ]] || { log "pglogical join: invalid node name '$n'"; exit 1; }
done
# Wake this node's pglogical manager while subscriptions are made here (lib/sh/pglogical-wake.sh).
wake_manager_start "$J_TIMEOUT"
J_TIMEOUT_MS="$((J_TIMEOUT * 1000))ms"
J_TIMEOUT_LONG_MS="$(((J_TIMEOUT + 10) * 1000))ms"

# wait_all PID...: waits for every background job; exits 1 after all ended if any failed (each
# job logged its own failure).
wait_all() {
  local p rc=0
  for p in "$@"; do wait "$p" || rc=1; done
  [ "$rc" = 0 ] || exit 1
}

# on DSN [PSQL-ARGS...]: the SQL on stdin runs on this node (DSN empty) or on the peer at DSN.
on() {
  local dsn=$1
  shift
  if [ -z "$dsn" ]; then sql_local "$PG_DB" "$@"; else sql_peer "$dsn" "$@"; fi
}

# create_subs DSN SYNC ENABLE SUB PROVIDER_DSN [SUB PROVIDER_DSN]...: where DSN points, in one
# session and transaction, creates each subscription that does not exist yet (SYNC: copy structure
# and data) and, with ENABLE=1, enables each one that exists disabled (parked by step 1).
create_subs() {
  local dsn=$1 sync=$2 enable=$3 list="" nl=$'\n'
  shift 3
  while [ "$#" -ge 2 ]; do
    case "$1$2" in *$'\t'* | *"$nl"*) log "pglogical join: a subscription name or DSN holds a tab or a newline"; exit 1 ;; esac
    list+="$1"$'\t'"$2"$'\n'
    shift 2
  done
  on "$dsn" -v subs="${list%$'\n'}" -v sync="$sync" -v enable="$enable" <<'SQL'
SET pulumi_bdr.subs = :'subs';
SET pulumi_bdr.sync = :'sync';
SET pulumi_bdr.enable = :'enable';
DO $pb$
DECLARE
  line text;
  sub text;
BEGIN
  -- Serialize with any other run (e.g. the orphaned backend of a killed run still creating
  -- this subscription, or another node's join making one here): the checks below then see
  -- its committed result.
  PERFORM pg_catalog.pg_advisory_xact_lock(7262840001);
  FOREACH line IN ARRAY string_to_array(current_setting('pulumi_bdr.subs'), E'\n') LOOP
    sub := split_part(line, E'\t', 1);
    IF NOT EXISTS (SELECT 1 FROM pglogical.subscription WHERE sub_name = sub) THEN
      PERFORM pglogical.create_subscription(
        subscription_name := sub,
        provider_dsn := split_part(line, E'\t', 2),
        replication_sets := ARRAY['default', 'default_insert_only', 'ddl_sql']::text[],
        synchronize_structure := current_setting('pulumi_bdr.sync')::boolean,
        synchronize_data := current_setting('pulumi_bdr.sync')::boolean,
        forward_origins := '{}'::text[]);
    ELSIF current_setting('pulumi_bdr.enable') = '1'
          AND EXISTS (SELECT 1 FROM pglogical.subscription WHERE sub_name = sub AND NOT sub_enabled) THEN
      PERFORM pglogical.alter_subscription_enable(sub, true);
    END IF;
  END LOOP;
END
$pb$;
SQL
}

# wait_sync DSN WHERE SUB: bounded wait for a subscription's initial sync; on failure the
# server's error and the subscription status, then exit 1.
wait_sync() {
  if ! on "$1" -v sub="$3" -v tms="$J_TIMEOUT_MS" <<'SQL'
SET statement_timeout = :'tms';
SELECT pglogical.wait_for_subscription_sync_complete(:'sub');
SQL
  then
    log "pglogical: subscription $3 on $2 did not finish its initial sync within ${J_TIMEOUT}s; status:"
    on "$1" <<'SQL' >&2 || true
SELECT subscription_name || ': ' || status || ' (provider ' || provider_node || ')' FROM pglogical.show_subscription_status();
SQL
    exit 1
  fi
}

# wait_replicating DSN SUB...: poll until the subscriptions exist and are replicating.
wait_replicating() {
  local dsn=$1 subs
  shift
  subs=$(printf '%s\n' "$@")
  on "$dsn" -v subs="$subs" -v tms="$J_TIMEOUT_LONG_MS" -v secs="$J_TIMEOUT" <<'SQL'
SET statement_timeout = :'tms';
SET pulumi_bdr.subs = :'subs';
SET pulumi_bdr.secs = :'secs';
DO $pb$
DECLARE
  subs text[] := string_to_array(current_setting('pulumi_bdr.subs'), E'\n');
  secs int := current_setting('pulumi_bdr.secs')::int;
  deadline timestamptz := clock_timestamp() + make_interval(secs => secs);
  missing text;
  pending text;
BEGIN
  SELECT string_agg(x, ', ' ORDER BY x) INTO missing
    FROM unnest(subs) AS x
   WHERE NOT EXISTS (SELECT 1 FROM pglogical.subscription s WHERE s.sub_name = x);
  IF missing IS NOT NULL THEN
    RAISE EXCEPTION 'pglogical subscriptions missing: %', missing;
  END IF;
  LOOP
    SELECT string_agg(subscription_name || ' (' || status || ')', ', ' ORDER BY subscription_name) INTO pending
      FROM pglogical.show_subscription_status()
     WHERE subscription_name = ANY (subs) AND status <> 'replicating';
    EXIT WHEN pending IS NULL;
    IF clock_timestamp() > deadline THEN
      RAISE EXCEPTION 'pglogical subscriptions not replicating after %s: %', secs, pending;
    END IF;
    PERFORM pg_catalog.pg_sleep(0.02);
  END LOOP;
END
$pb$;
SQL
}

# wait_ready DSN WHERE SUB...: where DSN points, one session polls (every 10 ms) until each
# subscription exists, its initial sync (none to copy here) is done with every table it lists
# ready, and it is replicating; on timeout its status, then exit 1. For subscriptions that copy
# nothing (steps 5 and 6): pglogical's wait_for_subscription_sync_complete polls every 200 ms.
wait_ready() {
  local dsn=$1 where=$2 subs
  shift 2
  subs=$(printf '%s\n' "$@")
  if ! on "$dsn" -v subs="${subs%$'\n'}" -v tms="$J_TIMEOUT_LONG_MS" -v secs="$J_TIMEOUT" <<'SQL'
SET statement_timeout = :'tms';
SET pulumi_bdr.subs = :'subs';
SET pulumi_bdr.secs = :'secs';
DO $pb$
DECLARE
  subs text[] := string_to_array(current_setting('pulumi_bdr.subs'), E'\n');
  secs int := current_setting('pulumi_bdr.secs')::int;
  deadline timestamptz := clock_timestamp() + make_interval(secs => secs);
  pending text;
BEGIN
  LOOP
    SELECT string_agg(x || ' (' || coalesce(st.status, 'missing') || ', sync ' || coalesce(ss.sync_status::text, 'none') || ')', ', ' ORDER BY x)
      INTO pending
      FROM unnest(subs) AS x
      LEFT JOIN pglogical.subscription s ON s.sub_name = x
      LEFT JOIN pglogical.local_sync_status ss
        ON ss.sync_subid = s.sub_id AND ss.sync_nspname IS NULL AND ss.sync_relname IS NULL
      LEFT JOIN pglogical.show_subscription_status() st ON st.subscription_name = x
     WHERE s.sub_id IS NULL OR ss.sync_status IS DISTINCT FROM 'r' OR st.status IS DISTINCT FROM 'replicating'
        OR EXISTS (SELECT 1 FROM pglogical.local_sync_status t
                    WHERE t.sync_subid = s.sub_id AND t.sync_relname IS NOT NULL AND t.sync_status <> 'r');
    EXIT WHEN pending IS NULL;
    IF clock_timestamp() > deadline THEN
      RAISE EXCEPTION 'pglogical subscriptions not ready after %s: %', secs, pending;
    END IF;
    PERFORM pg_catalog.pg_sleep(0.01);
  END LOOP;
END
$pb$;
SQL
  then
    log "pglogical: subscriptions on $where not ready within ${J_TIMEOUT}s: $*"
    exit 1
  fi
}

log "pglogical: joining node $J_NODE through $J_TARGET"
on "" -v node="$J_NODE" <<'SQL'
SET pulumi_bdr.node = :'node';
DO $pb$
DECLARE
  existing text;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pglogical') THEN
    RAISE EXCEPTION 'pglogical is not installed in this database; run the node step for % first', current_setting('pulumi_bdr.node');
  END IF;
  SELECT n.node_name INTO existing
    FROM pglogical.local_node l JOIN pglogical.node n ON n.node_id = l.node_id;
  IF existing IS DISTINCT FROM current_setting('pulumi_bdr.node') THEN
    RAISE EXCEPTION 'local pglogical node is %, expected %', coalesce(existing, '(none)'), current_setting('pulumi_bdr.node');
  END IF;
END
$pb$;
SQL

# The other earlier nodes (all but the join target) and this node's subscriptions from them.
other_names=()
other_dsns=()
other_subs=()
earlier_subs=()
for i in "${!J_EARLIER_NAMES[@]}"; do
  earlier_subs+=("sub_${J_EARLIER_NAMES[$i]}_${J_NODE}")
  [ "${J_EARLIER_NAMES[$i]}" != "$J_TARGET" ] || continue
  other_names+=("${J_EARLIER_NAMES[$i]}")
  other_dsns+=("${J_EARLIER_DSNS[$i]}")
  other_subs+=("sub_${J_EARLIER_NAMES[$i]}_${J_NODE}")
done
target_sub="sub_${J_TARGET}_${J_NODE}"

# Sync state of the subscription that copies structure and data from the join target:
# none | i (init) | s/d/c (structure/data/constraints) | u (catchup) | r (ready).
target_sync=$(on "" -v sub="$target_sub" <<'SQL'
SELECT coalesce((SELECT st.sync_status::text
                   FROM pglogical.local_sync_status st
                   JOIN pglogical.subscription s ON s.sub_id = st.sync_subid
                  WHERE s.sub_name = :'sub'
                    AND st.sync_nspname IS NULL AND st.sync_relname IS NULL), 'none');
SQL
)
# 0. A cluster built from nothing: when this node and every earlier node hold nothing a copy
#    would carry (J_FRESH_SQL: no table, function, type, large object or extension of their own),
#    this node subscribes to every earlier node without a copy (steps 5-7 below, the join target
#    among them), and the earlier nodes to it: no copy, no drain. Every subscription is made by
#    exactly one join, so such joins run at once (the plan's one-pass edges; a destroy then parts
#    those nodes at once, which the part and the forget allow: they take the catalog lock).
fresh_dir=$(mktemp -d) || exit 1
pids=()
{ on "" <<<"$J_FRESH_SQL" >"$fresh_dir/self" 2>/dev/null || true; } &
pids+=("$!")
for i in "${!J_EARLIER_NAMES[@]}"; do
  { on "${J_EARLIER_DSNS[$i]}" <<<"$J_FRESH_SQL" >"$fresh_dir/$i" 2>/dev/null || true; } &
  pids+=("$!")
done
wait_all "${pids[@]}"
fresh=1
for f in "$fresh_dir"/*; do
  [ "$(cat "$f")" = t ] || fresh=0
done
rm -rf -- "$fresh_dir"
if [ "$fresh" = 1 ] && { [ "$target_sync" = none ] || [ "$target_sync" = r ]; }; then
  log "pglogical: no node holds data yet: $J_NODE subscribes to ${#J_EARLIER_NAMES[@]} earlier nodes without a copy"
  other_names=("${J_EARLIER_NAMES[@]}")
  other_dsns=("${J_EARLIER_DSNS[@]}")
  other_subs=("${earlier_subs[@]}")
elif [ "$target_sync" != r ]; then
  # 1. Subscribe to every other earlier node first, without copying: creating the subscription
  #    creates its slot there, so changes committed there from now on stream to this node.
  #    Park each one (disabled) until the tables exist here.
  pairs=()
  for i in "${!other_names[@]}"; do pairs+=("${other_subs[$i]}" "${other_dsns[$i]}"); done
  [ "${#pairs[@]}" -eq 0 ] || create_subs "" false 0 "${pairs[@]}"
  pids=()
  for i in "${!other_names[@]}"; do
    {
      wait_sync "" "$J_NODE" "${other_subs[$i]}"
      on "" -v sub="${other_subs[$i]}" <<'SQL'
SELECT pglogical.alter_subscription_disable(sub_name, true) FROM pglogical.subscription
 WHERE sub_name = :'sub' AND sub_enabled;
SQL
    } &
    pids+=("$!")
  done
  wait_all "${pids[@]}"
  if [ "${#other_names[@]}" -gt 0 ]; then
    # 2a. Stamp the copy: rows COPYed from the join target would otherwise carry the copy's
    #     commit time, and last_update_wins would then discard every update the other nodes
    #     made while the copy ran. Stamped with the time taken here (before step 2), the copy
    #     loses against exactly those changes the target may not hold yet.
    if [ "$target_sync" = none ]; then
      on "" -v app="${target_sub}_copy" <<'SQL'
CREATE SCHEMA IF NOT EXISTS pulumi_bdr_join;
CREATE TABLE IF NOT EXISTS pulumi_bdr_join.copy_stamp (ts timestamptz NOT NULL);
ALTER TABLE pulumi_bdr_join.copy_stamp ADD COLUMN IF NOT EXISTS app text;
DELETE FROM pulumi_bdr_join.copy_stamp;
INSERT INTO pulumi_bdr_join.copy_stamp (ts, app) VALUES (clock_timestamp(), :'app');
CREATE OR REPLACE FUNCTION pulumi_bdr_join.stamp_copy() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS
$fn$
DECLARE
  stamp timestamptz;
BEGIN
  IF pg_replication_origin_session_is_setup() THEN
    SELECT ts INTO stamp FROM pulumi_bdr_join.copy_stamp WHERE app = current_setting('application_name');
    IF stamp IS NOT NULL THEN
      PERFORM pg_replication_origin_xact_setup('0/0'::pg_lsn, stamp);
    END IF;
  END IF;
  RETURN NULL;
END
$fn$;
CREATE OR REPLACE FUNCTION pulumi_bdr_join.add_stamp_trigger() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS
$fn$
DECLARE
  rel oid;
BEGIN
  FOR rel IN SELECT DISTINCT c.objid FROM pg_event_trigger_ddl_commands() c
              WHERE c.object_type = 'table' AND c.schema_name <> 'pulumi_bdr_join' LOOP
    EXECUTE format('CREATE TRIGGER pulumi_bdr_stamp_copy BEFORE INSERT ON %s FOR EACH STATEMENT EXECUTE FUNCTION pulumi_bdr_join.stamp_copy()', rel::regclass);
    EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER pulumi_bdr_stamp_copy', rel::regclass);
  END LOOP;
END
$fn$;
DO $pb$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_event_trigger WHERE evtname = 'pulumi_bdr_join_stamp') THEN
    CREATE EVENT TRIGGER pulumi_bdr_join_stamp ON ddl_command_end WHEN TAG IN ('CREATE TABLE')
      EXECUTE FUNCTION pulumi_bdr_join.add_stamp_trigger();
  END IF;
END
$pb$;
SQL
    fi
    # 2. Make sure the join target already holds everything those nodes committed before their
    #    slot for this node existed: a drain of each of them toward the join target (drain.sh: a
    #    marker there, then the target's applied position for it), all in parallel.
    pids=()
    for i in "${!other_names[@]}"; do
      {
        if ! drain_to "$J_TIMEOUT" "${other_names[$i]}" "${other_dsns[$i]}" "$J_TARGET" "$J_TARGET_DSN" ||
          [ "${#DRAIN_UNREACHED[@]}" -gt 0 ]; then
          log "pglogical: $J_TARGET did not apply the changes of ${other_names[$i]} within ${J_TIMEOUT}s"
          exit 1
        fi
      } &
      pids+=("$!")
    done
    wait_all "${pids[@]}"
  fi
  # 3. Structure and data from the join target (pg_dump/pg_restore + COPY, one snapshot).
  create_subs "" true 0 "$target_sub" "$J_TARGET_DSN"
  wait_sync "" "$J_NODE" "$target_sub"
fi
# 4. This node's own replication set: every public table with a primary key, and the event
#    trigger for tables created later (the trigger came with the structure; re-assert it).
#    The copy-stamping helpers (step 2a) are dropped first, with the triggers they created (one
#    session: the engine's pglogical_own_set).
pglogical_own_set
# 5. Resume the parked subscriptions from the other earlier nodes (a new cluster: create them).
pairs=()
for i in "${!other_names[@]}"; do pairs+=("${other_subs[$i]}" "${other_dsns[$i]}"); done
[ "${#pairs[@]}" -eq 0 ] || create_subs "" false 1 "${pairs[@]}"
[ "${#other_subs[@]}" -eq 0 ] || wait_ready "" "$J_NODE" "${other_subs[@]}"
# 6. Every earlier node subscribes to this node (no copy: it holds nothing of its own yet), each
#    earlier node in parallel.
pids=()
for i in "${!J_EARLIER_NAMES[@]}"; do
  {
    create_subs "${J_EARLIER_DSNS[$i]}" false 0 "sub_${J_NODE}_${J_EARLIER_NAMES[$i]}" "$J_DSN"
    wait_ready "${J_EARLIER_DSNS[$i]}" "${J_EARLIER_NAMES[$i]}" "sub_${J_NODE}_${J_EARLIER_NAMES[$i]}"
  } &
  pids+=("$!")
done
wait_all "${pids[@]}"
# 7. Everything this node receives is replicating.
wait_replicating "" "${earlier_subs[@]}"
log "pglogical: node $J_NODE joined (${#J_EARLIER_NAMES[@]} providers, ${#J_EARLIER_NAMES[@]} subscribers)"
# ==== lib/sh/pglogical-wake.sh ====
# shellcheck shell=bash
# pglogical: wakes this node's pglogical manager while it starts apply workers. Sourced after
# common.sh; functions only. Used by the join steps (lib/sh/pglogical-join.sh, the bootstrap).
#
# Why: the manager starts the apply worker of each new (or re-enabled) subscription one at a
# time, and after registering one it checks whether it attached in 1 s steps
# (pglogical_worker.c wait_for_worker_startup: WaitLatch(..., 1000L)), holding a lock on
# pglogical.local_node that the next subscription made on the node waits for. The worker
# attaches within milliseconds, nothing sets the manager's latch then, so the k-th subscription
# made on one node waits about k - 1 s (measured: 4 subscriptions enabled at once got their
# workers after 3.1 s; with this waker after 0.16 s). SIGUSR1 sets a backend's latch and does
# nothing else when no procsignal is pending (PostgreSQL's procsignal_sigusr1_handler; the
# postmaster itself wakes a worker's registrant that way), and the manager then re-checks.
#
# wake_manager_start SECONDS: starts the waker in the background, its output away from the step's
# (the step ends without waiting for it). It sends SIGUSR1 to the database's pglogical manager
# every 20 ms while the calling step runs, then until no enabled subscription of the node has
# been without its apply worker for WAKE_QUIET seconds (subscriptions that other nodes' joins
# make here arrive after this node's own join may have ended), and never longer than SECONDS.
# Best effort: a signal that cannot be sent (another OS user) only leaves the 1 s steps.
WAKE_QUIET=${WAKE_QUIET:-3}

# One line: the manager's PID (0 when none runs) and how many enabled subscriptions have no
# apply worker, separated by |.
WAKE_STATE_SQL="SELECT coalesce((SELECT a.pid FROM pg_catalog.pg_stat_activity a
   WHERE a.backend_type = 'pglogical manager ' || d.oid LIMIT 1), 0) || '|' ||
  (SELECT count(*) FROM pglogical.subscription s
    WHERE s.sub_enabled AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a
                                         WHERE a.backend_type = 'pglogical apply ' || d.oid || ':' || s.sub_id))
  FROM pg_catalog.pg_database d WHERE d.datname = current_database();"

wake_manager_loop() {
  local limit=$1 owner=$2 start=$SECONDS quiet=$SECONDS row pid=0 missing=0 n tick every
  # A file descriptor nobody writes to: `read -t` on it sleeps without a process per sleep.
  exec {tick}<> <(:)
  while [ $((SECONDS - start)) -lt "$limit" ]; do
    row=$(sql_local "$PG_DB" -c "$WAKE_STATE_SQL" 2>/dev/null) || row="0|0"
    pid=${row%%|*}
    missing=${row#*|}
    [[ "$pid" =~ ^[0-9]+$ ]] || pid=0
    [ "$missing" = 0 ] || quiet=$SECONDS
    # While the step runs, the state is asked once a second (the manager's PID may change);
    # after it, four times a second, to stop once quiet.
    every=50
    if ! kill -0 "$owner" 2>/dev/null; then
      [ $((SECONDS - quiet)) -lt "$WAKE_QUIET" ] || return 0
      every=12
    fi
    for ((n = 0; n < every; n++)); do
      [ "$pid" = 0 ] || kill -USR1 "$pid" 2>/dev/null || true
      read -r -t 0.02 -u "$tick" _ || true
    done
  done
}

wake_manager_start() {
  local limit=$1 owner=$$
  case "$limit" in '' | *[!0-9]*) log "wake_manager_start: SECONDS must be a number, got '$limit'"; return 1 ;; esac
  (
    set +e
    trap '' HUP
    wake_manager_loop "$limit" "$owner"
  ) </dev/null >/dev/null 2>&1 &
}
# ==== lib/sh/pglogical-watch.sh ====
# shellcheck shell=bash
# pulumi-bdr pglogical watcher: the body of a small daemon that runs beside a node's PostgreSQL
# (file $PG_RUN/watch.sh = the step's values + common.sh + this; started by watch-ctl.sh's
# watch_start as the server's OS user, in a session of its own, with a clean environment).
#
# Why: pglogical's manager restarts a failed apply worker about 5 s after it failed and then only
# every 180 s. A provider restarted by anything but `pulumi up` (an operator, systemd, a crash)
# would leave its peers' apply workers idle for up to 3 minutes. Every WATCH_INTERVAL seconds the
# watcher runs one local query (this node's postmaster start time, its pglogical node name and its
# enabled, synced subscriptions) and restarts (alter_subscription_disable +
# alter_subscription_enable, both immediate):
#   - on every peer, the enabled subscriptions from THIS node, when this node's postmaster start
#     time changed since the last poll (or since the last one recorded in $PG_RUN/watch.state, for
#     a watcher started after the restart, e.g. by a container's entrypoint): the peers' apply
#     workers may still show 'replicating' on a connection that died without a FIN;
#   - locally, every subscription whose status was 'down' (enabled, no apply worker) on two polls
#     in a row, once its provider accepts connections, at most once per WATCH_COOLDOWN seconds per
#     provider (this node restarted, or a provider was away).
# So a quiet cluster costs one local psql per node per poll; peers are contacted only after a
# restart or while a subscription is down. (Until 2026-11-30 every watcher asked every provider
# for its start time on every poll: N psql processes and N-1 TCP logins per node every 2 s, 28% of
# this 2-core machine for an idle 3-node cluster.)
# Only subscriptions whose initial sync is done (subscription-level local_sync_status 'r') are
# touched: a join in progress (creating, syncing, parking subscriptions) is left alone.
#
# Local connections go through the Unix socket as the OS user (peer authentication); connections
# to peers use the DSN pglogical stores and PGPASSFILE. No password is on a command line or in
# the environment. Only one watcher runs per node (flock on $PG_RUN/watch.lock); it exits when its
# pid file is gone or names another process (watch_stop, the node's delete) or the run directory
# is removed. It logs its actions to $PG_RUN/watch.log.
set +e
WATCH_INTERVAL=${WATCH_INTERVAL:-2}
WATCH_COOLDOWN=${WATCH_COOLDOWN:-6}
exec 9>>"$PG_RUN/watch.lock" || exit 1
flock -w 5 9 || exit 0
exec </dev/null >>"$PG_RUN/watch.log" 2>&1
printf '%s\n' "$$" >"$PG_RUN/watch.pid.tmp" && mv -f "$PG_RUN/watch.pid.tmp" "$PG_RUN/watch.pid"
trap 'exit 0' TERM INT HUP
trap '[ "$(cat "$PG_RUN/watch.pid" 2>/dev/null)" != "$$" ] || rm -f "$PG_RUN/watch.pid"' EXIT

wlog() { printf '%s watcher %s: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)" "$$" "$*"; }
# SQL on stdin against the local server (Unix socket, peer authentication); -v assignments allowed.
wsql_local() {
  PGCONNECT_TIMEOUT=3 "$PG_BIN/psql" -X -q -At -F '|' -v ON_ERROR_STOP=1 -h "$PG_RUN" -p "$PG_PORT" -d "$PG_DB" "$@"
}
# wsql DSN [PSQL-ARGS...]: the same on this node (DSN empty) or on the peer at DSN.
wsql() {
  local dsn=$1
  shift
  if [ -z "$dsn" ]; then wsql_local "$@"; else PGCONNECT_TIMEOUT=3 "$PG_BIN/psql" -X -q -At -F '|' -v ON_ERROR_STOP=1 -d "$dsn" "$@"; fi
}
# Whether the server at DSN accepts connections.
accepts() {
  PGCONNECT_TIMEOUT=2 "$PG_BIN/psql" -X -q -At -d "$1" -c 'SELECT 1' >/dev/null 2>&1
}
# bounce DSN SUB: restart one subscription's apply worker on this node (DSN empty) or a peer. The
# enable is retried: a subscription this watcher disabled must never stay disabled (a concurrent
# bounce by `pulumi up` can make one call fail); one that still fails is retried on every poll.
bounce() {
  local dsn=$1 sub=$2
  wsql "$dsn" -v sub="$sub" >/dev/null <<'SQL'
SELECT pglogical.alter_subscription_disable(:'sub', true);
SQL
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    if wsql "$dsn" -v sub="$sub" >/dev/null <<'SQL'
SELECT pglogical.alter_subscription_enable(:'sub', true);
SQL
    then return 0; fi
    sleep 0.2
  done
  wlog "could not enable $sub${dsn:+ on a peer}: retrying on the next poll"
  pending_enable["$dsn|$sub"]=1
  return 1
}

# Milliseconds since an $EPOCHREALTIME value.
ms_since() {
  local now=${EPOCHREALTIME/./} then=${1/./}
  printf '%s' "$(((now - then) / 1000))"
}

# wake_peers ME DSN...: on each peer, restart the enabled subscriptions whose origin is node ME.
# Peers it could not reach stay in wake_pending: watch_once tries them again on the next polls.
wake_pending=()
wake_peers() {
  local me=$1 dsn subs sub t0
  shift
  wake_pending=()
  for dsn in "$@"; do
    subs=$(wsql "$dsn" -v me="$me" 2>/dev/null <<'SQL'
SELECT u.sub_name FROM pglogical.subscription u JOIN pglogical.node n ON n.node_id = u.sub_origin
 WHERE n.node_name = :'me' AND u.sub_enabled ORDER BY 1;
SQL
    ) || {
      wlog "could not reach a peer to wake its subscriptions from $me: retrying on the next poll"
      wake_pending+=("$dsn")
      continue
    }
    while IFS= read -r sub; do
      [ -n "$sub" ] || continue
      t0=$EPOCHREALTIME
      if bounce "$dsn" "$sub"; then wlog "restarted $sub on its node in $(ms_since "$t0") ms"; fi
    done <<<"$subs"
  done
}

STATE_FILE="$PG_RUN/watch.state"
declare -A bounced_at=() pending_enable=() was_down=()
last_start=$(cat "$STATE_FILE" 2>/dev/null)
watch_once() {
  local out head rows me st sub status prov dsn key t0 now todo
  local -A down_of=() dsn_of=() now_down=()
  local peers=()
  for key in "${!pending_enable[@]}"; do
    if wsql "${key%%|*}" -v sub="${key#*|}" >/dev/null <<'SQL'
SELECT pglogical.alter_subscription_enable(:'sub', true)
 FROM pglogical.subscription WHERE sub_name = :'sub' AND NOT sub_enabled;
SQL
    then unset "pending_enable[$key]"; wlog "enabled ${key#*|} again"; fi
  done
  # One query; fails (quietly) while the server is down or before the extension exists. First
  # line: start time and node name; then one line per synced, enabled subscription.
  out=$(wsql_local 2>/dev/null <<'SQL'
SELECT pg_catalog.pg_postmaster_start_time(),
       (SELECT n.node_name FROM pglogical.local_node l JOIN pglogical.node n ON n.node_id = l.node_id),
       (SELECT a.pid FROM pg_catalog.pg_stat_activity a, pg_catalog.pg_database d
         WHERE d.datname = current_database() AND a.backend_type = 'pglogical manager ' || d.oid LIMIT 1);
SELECT s.subscription_name, s.status, s.provider_node, s.provider_dsn
  FROM pglogical.show_subscription_status() s
  JOIN pglogical.subscription u ON u.sub_name = s.subscription_name
  JOIN pglogical.local_sync_status y
    ON y.sync_subid = u.sub_id AND y.sync_nspname IS NULL AND y.sync_relname IS NULL
 WHERE s.status <> 'disabled' AND y.sync_status = 'r'
 ORDER BY s.provider_node, s.subscription_name;
SQL
  ) || return 0
  head=${out%%$'\n'*}
  rows=${out#"$head"}
  IFS='|' read -r st me manager_pid <<<"$head"
  [[ "$manager_pid" =~ ^[1-9][0-9]*$ ]] || manager_pid=""
  local was_poking=$poke_manager
  poke_manager=0
  while IFS='|' read -r sub status prov dsn; do
    [ -n "$sub" ] && [ -n "$prov" ] || continue
    if [ -z "${dsn_of[$prov]:-}" ]; then peers+=("$dsn"); fi
    dsn_of[$prov]=$dsn
    if [ "$status" = down ]; then
      # The manager may be starting it (1 s per worker): wake it until the next poll.
      poke_manager=1
      # Down on two polls in a row: not a worker the manager is just starting.
      [ -z "${was_down[$sub]:-}" ] || down_of[$prov]+="$sub"$'\n'
      now_down[$sub]=1
    fi
  done <<<"$rows"
  was_down=()
  for sub in "${!now_down[@]}"; do was_down[$sub]=1; done
  if [ "$poke_manager" = 1 ] && [ -n "$manager_pid" ]; then
    if [ "$was_poking" = 0 ]; then
      wlog "${#now_down[@]} subscription(s) without an apply worker: waking the pglogical manager every 20 ms"
    fi
    poke_start
  fi
  # This node restarted: its peers' apply workers for it may be idle.
  if [ -n "$st" ] && [ "$st" != "$last_start" ]; then
    if [ -n "$last_start" ] && [ -n "$me" ] && [ "${#peers[@]}" -gt 0 ]; then
      wlog "this node restarted ($last_start -> $st): waking the peers' subscriptions from $me"
      wake_peers "$me" "${peers[@]}"
    fi
    last_start=$st
    printf '%s\n' "$st" >"$STATE_FILE.tmp" && mv -f "$STATE_FILE.tmp" "$STATE_FILE"
  elif [ "${#wake_pending[@]}" -gt 0 ] && [ -n "$me" ]; then
    wake_peers "$me" "${wake_pending[@]}"
  fi
  now=$EPOCHSECONDS
  for prov in "${!down_of[@]}"; do
    ((now - ${bounced_at[$prov]:-0} >= WATCH_COOLDOWN)) || continue
    accepts "${dsn_of[$prov]}" || continue
    bounced_at[$prov]=$now
    todo=${down_of[$prov]}
    while IFS= read -r sub; do
      [ -n "$sub" ] || continue
      t0=$EPOCHREALTIME
      wlog "restarting $sub: apply worker down while provider $prov accepts connections"
      if bounce "" "$sub"; then wlog "restarted $sub in $(ms_since "$t0") ms"; fi
    done <<<"$todo"
  done
}

# poke_start: while a subscription of this node has no apply worker (after this node's restart
# the manager starts them one at a time, checking each in 1 s steps: about k - 1 s for k
# subscriptions), a background job wakes the manager with SIGUSR1 every 20 ms until the next
# poll (as lib/sh/pglogical-wake.sh does during a join; the signal only sets the manager's latch).
# In the background: the peers' wake-up that follows a restart takes a while itself.
exec {tick}<> <(:)
poker_pid=""
poke_start() {
  local secs=${WATCH_INTERVAL%%.*}
  [[ "$secs" =~ ^[0-9]+$ ]] && ((secs > 0)) || secs=1
  if [ -n "$poker_pid" ] && kill -0 "$poker_pid" 2>/dev/null; then return 0; fi
  (
    for ((n = 0; n < secs * 50; n++)); do
      kill -USR1 "$manager_pid" 2>/dev/null || exit 0
      read -r -t 0.02 -u "$tick" _
    done
  ) &
  poker_pid=$!
}

poke_manager=0
manager_pid=""
wlog "watching port $PG_PORT every ${WATCH_INTERVAL}s"
while :; do
  # A builtin read: no process per poll for the pid check.
  pid=""
  read -r pid 2>/dev/null <"$PG_RUN/watch.pid"
  [ "$pid" = "$$" ] || exit 0
  watch_once
  sleep "$WATCH_INTERVAL"
done
# ==== lib/sh/proxy.sh ====
# shellcheck shell=bash
# pulumi-bdr proxy host (HAProxy + PgBouncer): apply (with the switchover choreography), destroy,
# and the guard's probe and ensure. Sourced after common.sh, whose values are the proxy's
# (PG_OS_USER: the proxy's OS user; PG_RUN/PG_PORT: PgBouncer's socket directory and port;
# PGPASSFILE: the proxy's .pgpass); functions only. lib/proxy/scripts.ts describes the behaviour.
#
# Values (every entry point):
#   BASE                the proxy's directory (0700, owned by PG_OS_USER; removed by proxy_destroy)
#   HA_CFG HA_PID HA_PIDS HA_SOCK  haproxy.cfg, its pid file, every pid started, the admin socket
#   HA_BACKEND          the HAProxy backend's name
#   PGB_INI PGB_PID PGB_LOG PGB_SOCKDIR PGB_PORT PGB_USERLIST  PgBouncer's files, socket, port
#   ADMIN_USER          the replication user (health check, admin console, drain)
#   HAPROXY_BIN PGBOUNCER_BIN  the daemons' binaries
#   WAIT_SECONDS        upper bound of every wait but the drain
# Values (proxy_apply only):
#   NEW_WRITE  SWITCHOVER_METHOD (reconnect | pause)  DRAIN_TIMEOUT (seconds)
#   P_NODE_NAMES P_NODE_DSNS  arrays: the cluster's nodes and their DSNs (for the drain)
#   P_DRAIN_SQL         the engine's drain SQL, run on the old write node (its own timeout)
#   DRAIN_MARK_SQL DRAIN_APPLIED_SQL  the engine's faster drain (lib/sh/drain.sh), empty when it
#                       has none: the drain then marks the old node and waits on every other node
#   PAUSE_DRAIN_SECONDS bound of the drain inside a pause switchover (then RESUME and the full drain)
#   P_PACKAGES          array: Debian packages to install when missing (empty: none)
#   P_USERLIST_USER     the replication user as an auth-file field ("name")
#   P_PGPASS_USER       the replication user as a .pgpass field (\ and : escaped)
#   P_PGB_INI_TEXT P_HA_CFG_TEXT  the rendered pgbouncer.ini and haproxy.cfg
# Secrets (stdin, read_secrets; proxy_apply only): SECRET_PASSWORD, SECRET_VERIFIER and the
# optional SECRET_APP_USERS (application roles' auth-file lines, "role" "<SCRAM verifier>").
#
# Entry points: proxy_apply, proxy_destroy, proxy_probe (exit 0 when both daemons run, changes
# nothing), proxy_ensure (starts whichever is down from the files on disk; needs no secret),
# proxy_handoff away|back NODE (a node's config step, around its restart; common values only: it
# reads the node list and the drain SQL that proxy_apply left in $BASE/nodes.tsv, drain.sql,
# drain-mark.sql, drain-applied.sql and drain.seconds).

# a switchover in progress is recorded so that a re-run after a failed drain drains again
PENDING=""
# proxy_check_base: refuse an empty or root base directory (proxy_destroy removes it).
proxy_check_base() {
  case "$BASE" in "" | /) log "refusing to work on base directory '$BASE'"; exit 1 ;; esac
  PENDING="$BASE/switchover.pending"
}
# pid_of FILE: the first pid in a pid file (empty if none)
pid_of() { if [ -s "$1" ]; then head -n1 "$1" | tr -dc 0-9; echo; fi; }
# is_proc PID NAME: PID is alive (not a zombie) and runs NAME (guards against stale pid files and reused pids)
is_proc() {
  [ -n "$1" ] && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ] && ! grep -qs '^State:[[:space:]]*Z' "/proc/$1/status"
}
not_proc() { ! is_proc "$1" "$2"; }
ha_running() { is_proc "$(pid_of "$HA_PID")" haproxy; }
pgb_running() { is_proc "$(pid_of "$PGB_PID")" pgbouncer; }
# wait_for SECONDS WHAT CMD...: poll CMD every 0.1 s until it succeeds; fail after SECONDS
wait_for() {
  local limit=$1 what=$2 start=$SECONDS; shift 2
  until "$@"; do
    if [ $((SECONDS - start)) -ge "$limit" ]; then log "timed out after ${limit}s waiting for $what"; return 1; fi
    sleep 0.1
  done
}
# stop_pid PID NAME SIGNAL: signal a process, wait for it to exit, SIGKILL it after WAIT_SECONDS
stop_pid() {
  local pid=$1 name=$2 sig=$3
  is_proc "$pid" "$name" || return 0
  kill "-$sig" "$pid" 2>/dev/null || true
  if ! wait_for "$WAIT_SECONDS" "$name ($pid) to exit" not_proc "$pid" "$name"; then
    log "killing $name ($pid)"; kill -KILL "$pid" 2>/dev/null || true
  fi
}
# ha_cmd COMMANDS: run commands (separated by ';') on HAProxy's admin socket; fail on an error reply
ha_cmd() {
  local out
  out=$(printf '%s\n' "$1" | socat -t 5 stdio "UNIX-CONNECT:$HA_SOCK") || { log "HAProxy admin socket $HA_SOCK: no answer to: $1"; return 1; }
  if printf '%s\n' "$out" | grep -qiE "^(unknown|no such|require|invalid|.*not found)"; then log "HAProxy refused '$1': $out"; return 1; fi
  printf '%s\n' "$out"
}
# pgb_psql SECONDS [PSQL-ARGS...]: psql on PgBouncer's admin console (Unix socket), bounded
pgb_psql() {
  local secs=$1; shift
  as_pg timeout "$secs" env PGPASSFILE="$PGPASSFILE" PGCONNECT_TIMEOUT=5 "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 \
    -h "$PGB_SOCKDIR" -p "$PGB_PORT" -U "$ADMIN_USER" -d pgbouncer "$@"
}
# pgb_admin SECONDS COMMAND...: run commands on PgBouncer's admin console, bounded
pgb_admin() {
  local secs=$1 c; shift; local args=()
  for c in "$@"; do args+=(-c "$c"); done
  pgb_psql "$secs" "${args[@]}"
}
# node_dsn NAME: connection string of a cluster node (for the drain), from P_NODE_NAMES/P_NODE_DSNS
node_dsn() {
  for i in "${!P_NODE_NAMES[@]}"; do
    if [ "${P_NODE_NAMES[$i]}" = "$1" ]; then printf '%s\n' "${P_NODE_DSNS[$i]}"; return 0; fi
  done
  return 1
}
# put_file PATH MODE <CONTENT: the preamble's safe_write (status 0 = changed, 1 = same; a failed write exits)
put_file() { safe_write "$@"; }
# ha_servers: NAME,STATUS,BCK for each server of the backend, from the running HAProxy
ha_servers() {
  ha_cmd "show stat" | awk -F, -v be="$HA_BACKEND" 'NR==1{for(i=1;i<=NF;i++){h=$i; sub(/^# */,"",h); c[h]=i}; next}
    $1==be && $2!="BACKEND" && $2!="FRONTEND" {print $2","$(c["status"])","$(c["bck"])}'
}
# ha_current SERVERS: the server traffic goes to now (stick-table entry, else the non-backup server)
ha_current() {
  local stuck
  stuck=$(ha_cmd "show table $HA_BACKEND" | sed -n 's/.* server_key=\([^ ]*\).*/\1/p' | head -n1)
  if [ -n "$stuck" ] && printf '%s\n' "$1" | grep -q "^$stuck,"; then
    case "$(status_of "$1" "$stuck")" in MAINT*|DRAIN*) ;; *) printf '%s\n' "$stuck"; return 0 ;; esac
  fi
  printf '%s\n' "$1" | awk -F, '$3=="0"{print $1; exit}'
}
status_of() { printf '%s\n' "$1" | awk -F, -v s="$2" '$1==s{print $2; exit}'; }
record_ha_pid() {
  local p keep
  p=$(pid_of "$HA_PID")
  keep=$( { cat "$HA_PIDS" 2>/dev/null || true; printf '%s\n' "$p"; } | sort -u | while read -r q; do if is_proc "$q" haproxy; then printf '%s\n' "$q"; fi; done)
  printf '%s\n' "$keep" | put_file "$HA_PIDS" 0600 || true
}
ha_start() {
  log "starting HAProxy"
  daemon "$HAPROXY_BIN" -D -f "$HA_CFG"
  wait_for "$WAIT_SECONDS" "HAProxy to start" ha_running
  record_ha_pid
  wait_for "$WAIT_SECONDS" "HAProxy's admin socket" ha_cmd "show info" >/dev/null
}
# ha_new_pid OLD_PIDS: the pid file names a running HAProxy that is not one of OLD_PIDS
ha_new_pid() { local p; p=$(pid_of "$HA_PID"); [ -n "$p" ] && [[ " $1 " != *" $p "* ]] && is_proc "$p" haproxy; }
# ha_reload_start: start a new HAProxy that takes over the listening socket (-x) and soft-stops the old one (-sf);
# it listens when the command returns. ha_reload_finish: check it runs and answers on the admin socket.
HA_OLD_PIDS=""
ha_reload_start() {
  HA_OLD_PIDS=$(tr -s '\n' ' ' <"$HA_PID")
  log "reloading HAProxy (old pids: $HA_OLD_PIDS)"
  # shellcheck disable=SC2086
  daemon "$HAPROXY_BIN" -D -f "$HA_CFG" -x "$HA_SOCK" -sf $HA_OLD_PIDS
}
ha_reload_finish() {
  wait_for "$WAIT_SECONDS" "the new HAProxy process" ha_new_pid "$HA_OLD_PIDS"
  record_ha_pid
  wait_for "$WAIT_SECONDS" "HAProxy's admin socket" ha_cmd "show info" >/dev/null
}
ha_reload() { ha_reload_start; ha_reload_finish; }
install_cfg() { mv -f "$HA_CFG.new" "$HA_CFG"; }
pgb_reconnect() {
  if pgb_running; then
    pgb_admin "$WAIT_SECONDS" RECONNECT || log "PgBouncer RECONNECT failed (pooled connections move at their next reconnect)"
  fi
}
# drain_old NAME STATUS [SECONDS]: wait until the old write node's changes have replicated: with the
# engine's faster drain, until every other node applied them (drain_to, bounded by SECONDS, default
# DRAIN_TIMEOUT; a node that cannot be reached is logged and skipped), else the engine's drain SQL
# on the old node. Status 1 when the wait failed or timed out. In two phases for the pause
# switchover: drain_old_prepare (same arguments; connects the drain's sessions ahead of time) and
# drain_old_run NAME.
DRAIN_OLD_MODE=none
DRAIN_OLD_DSN=""
drain_old_prepare() {
  local secs=${3:-$DRAIN_TIMEOUT} i args=()
  DRAIN_OLD_MODE=none
  if ! DRAIN_OLD_DSN=$(node_dsn "$1"); then log "old write node $1 is no longer in the cluster: nothing to drain"; return 0; fi
  case "$2" in
    DOWN*) log "old write node $1 is DOWN: its unreplicated changes cannot be drained"; return 0 ;;
  esac
  log "waiting up to ${secs}s for the changes of $1 to replicate"
  DRAIN_OLD_MODE=sql
  if [ -n "$DRAIN_MARK_SQL" ] && [ -n "$DRAIN_APPLIED_SQL" ]; then
    for i in "${!P_NODE_NAMES[@]}"; do
      if [ "${P_NODE_NAMES[$i]}" != "$1" ]; then args+=("${P_NODE_NAMES[$i]}" "${P_NODE_DSNS[$i]}"); fi
    done
    if drain_prepare "$secs" "$1" "$DRAIN_OLD_DSN" "${args[@]}"; then DRAIN_OLD_MODE=fast; fi
  fi
}
drain_old_run() {
  local rc=0 mode=$DRAIN_OLD_MODE
  DRAIN_OLD_MODE=none
  case $mode in
    none) return 0 ;;
    fast) drain_run || rc=$? ;;
    *) printf '%s' "$P_DRAIN_SQL" | sql_peer "$DRAIN_OLD_DSN" >/dev/null || rc=$? ;;
  esac
  # psql (and drain_run) exit with 2 when the old node cannot be reached
  if [ "$rc" = 2 ]; then log "old write node $1 is unreachable: its unreplicated changes cannot be drained now"; return 0; fi
  if [ "$rc" != 0 ]; then
    log "drain of $1 failed or timed out: traffic is on $NEW_WRITE, $1 stays in maintenance; re-run to retry"
    return 1
  fi
}
drain_old() {
  drain_old_prepare "$@"
  drain_old_run "$1"
}
old_servers() { printf '%s\n' "$1" | awk -F, -v n="$NEW_WRITE" '$1!=n{print $1}'; }
# pgb_move: PgBouncer RECONNECT + WAIT_CLOSE (each server connection closes when its transaction
# ends and reopens wherever HAProxy sends new connections now); bounded by WAIT_SECONDS.
pgb_move() {
  if pgb_running; then
    pgb_admin "$WAIT_SECONDS" RECONNECT
    if ! pgb_admin "$WAIT_SECONDS" WAIT_CLOSE; then
      log "PgBouncer WAIT_CLOSE did not finish within ${WAIT_SECONDS}s: the remaining server connections are cut"
    fi
  fi
}
# move_off SERVER...: moves traffic off the servers without failing a transaction: drain + clear
# table (new connections go elsewhere), PgBouncer RECONNECT + WAIT_CLOSE, then maintenance (cuts
# only sessions that bypass PgBouncer) + clear table. Used by the switchover and the hand-off.
move_off() {
  local cmds="" s
  for s in "$@"; do cmds="${cmds}set server $HA_BACKEND/$s state drain; "; done
  ha_cmd "${cmds}clear table $HA_BACKEND" >/dev/null
  pgb_move
  cmds=""
  for s in "$@"; do cmds="${cmds}disable server $HA_BACKEND/$s; "; done
  ha_cmd "${cmds}clear table $HA_BACKEND" >/dev/null
}
switchover_reconnect() {
  local servers=$1 old=$2 old_status
  old_status=$(status_of "$servers" "$old")
  log "switchover $old -> $NEW_WRITE: old nodes draining, new server connections go to $NEW_WRITE"
  # shellcheck disable=SC2046
  move_off $(old_servers "$servers")
  printf '%s\n' "$old" | put_file "$PENDING" 0600 || true
  drain_old "$old" "$old_status"
  ha_cmd "clear table $HA_BACKEND" >/dev/null
  install_cfg
  ha_reload
  rm -f "$PENDING"
  pgb_reconnect
}
# pgb_no_servers: PgBouncer holds no server connection (SHOW SERVERS is empty)
pgb_no_servers() { [ -z "$(pgb_admin 5 "SHOW SERVERS")" ]; }
PAUSED=0
PAUSE_START=0
# A console session connected before PAUSE that runs RESUME when told (pgb_resume_now): RESUME
# then costs no process start and no login inside the pause. Any failure falls back to pgb_admin.
PGB_RESUME_FD=""
PGB_RESUME_PID=""
PGB_RESUME_DIR=""
pgb_resume_prepare() {
  local fd f secs=$((WAIT_SECONDS * 2 + PAUSE_DRAIN_SECONDS + 10))
  PGB_RESUME_DIR=$(mktemp -d) || return 1
  mkfifo -m 0600 "$PGB_RESUME_DIR/in" || return 1
  (
    for f in "${DRAIN_FDS[@]}"; do if [ -n "$f" ]; then exec {f}>&-; fi; done
    pgb_psql "$secs" <"$PGB_RESUME_DIR/in" >/dev/null 2>"$PGB_RESUME_DIR/err"
  ) &
  PGB_RESUME_PID=$!
  exec {fd}>"$PGB_RESUME_DIR/in"
  PGB_RESUME_FD=$fd
}
# pgb_resume_now: RESUME through the prepared session (status 0 when it ran); ends the session.
pgb_resume_now() {
  local fd=$PGB_RESUME_FD rc=0
  [ -n "$fd" ] || return 1
  (printf 'RESUME;\n\\q\n' >&"$fd") 2>/dev/null || true
  exec {fd}>&-
  PGB_RESUME_FD=""
  wait "$PGB_RESUME_PID" || rc=$?
  if [ "$rc" != 0 ]; then log "PgBouncer RESUME through the prepared session failed: $(tail -n2 "$PGB_RESUME_DIR/err" 2>/dev/null)"; fi
  rm -rf -- "$PGB_RESUME_DIR"
  return "$rc"
}
# pgb_resume_discard: ends the prepared session without RESUME.
pgb_resume_discard() {
  local fd=$PGB_RESUME_FD
  [ -n "$fd" ] || return 0
  (printf '\\q\n' >&"$fd") 2>/dev/null || true
  exec {fd}>&-
  PGB_RESUME_FD=""
  wait "$PGB_RESUME_PID" 2>/dev/null || true
  rm -rf -- "$PGB_RESUME_DIR"
}
resume_if_paused() {
  if [ "$PAUSED" = 1 ]; then
    PAUSED=0
    if pgb_resume_now; then
      log "PgBouncer RESUME (paused for $(($(date +%s%3N) - PAUSE_START)) ms)"
    else
      log "PgBouncer RESUME"; pgb_admin "$WAIT_SECONDS" RESUME || log "PgBouncer RESUME failed: run RESUME on its console"
    fi
  fi
  pgb_resume_discard
}
switchover_pause() {
  local servers=$1 old=$2 old_status cmds="" s left drained=0
  old_status=$(status_of "$servers" "$old")
  # Recorded before the pause (a re-run with traffic on the new node drains the old one again).
  printf '%s\n' "$old" | put_file "$PENDING" 0600 || true
  for s in $(old_servers "$servers"); do cmds="${cmds}disable server $HA_BACKEND/$s; "; done
  if pgb_running; then
    # Everything that can happen before the pause does: the drain's and RESUME's sessions connect
    # now, so inside the pause only their queries run.
    drain_old_prepare "$old" "$old_status" "$PAUSE_DRAIN_SECONDS"
    pgb_resume_prepare || log "PgBouncer: no console session prepared for RESUME (RESUME will start one)"
    log "switchover $old -> $NEW_WRITE: PgBouncer PAUSE"
    PAUSED=1
    PAUSE_START=$(date +%s%3N)
    trap resume_if_paused EXIT
    # PgBouncer 1.18 can answer PAUSE at once with the reply of an earlier WAIT_CLOSE (its wait-close
    # flag stays set): trust only SHOW SERVERS being empty (PAUSE closes every server connection).
    if ! left=$(pgb_admin "$WAIT_SECONDS" PAUSE "SHOW SERVERS"); then
      log "PgBouncer PAUSE did not finish within ${WAIT_SECONDS}s"; exit 1
    fi
    if [ -n "$left" ] && ! wait_for "$WAIT_SECONDS" "PgBouncer to close its server connections" pgb_no_servers; then exit 1; fi
  fi
  ha_cmd "${cmds}clear table $HA_BACKEND" >/dev/null
  # The drain runs inside the pause, so no client writes on the new node before it holds every
  # change of the old one (no conflict between a late change and a newer one). With the engine's
  # faster drain this takes milliseconds; it is bounded by PAUSE_DRAIN_SECONDS, after which
  # clients resume and the full drain follows, as with reconnect.
  if [ "$PAUSED" = 1 ] && drain_old_run "$old"; then drained=1; fi
  if [ -n "$(status_of "$servers" "$NEW_WRITE")" ]; then
    # The running HAProxy has the new node: with every other server disabled, it takes the traffic.
    resume_if_paused
    trap - EXIT
    if [ "$drained" = 0 ]; then drain_old "$old" "$old_status"; fi
    install_cfg
    ha_reload
  else
    # No open session may be inherited by the new HAProxy process.
    pgb_resume_discard
    install_cfg
    ha_reload_start
    resume_if_paused
    trap - EXIT
    ha_reload_finish
    if [ "$drained" = 0 ]; then drain_old "$old" "$old_status"; fi
  fi
  rm -f "$PENDING"
}
pgb_ready() { [ -S "$PGB_SOCKDIR/.s.PGSQL.$PGB_PORT" ] && pgb_running; }
pgb_start() {
  log "starting PgBouncer"
  rm -f "$PGB_PID"
  daemon "$PGBOUNCER_BIN" -d -q "$PGB_INI"
  if ! wait_for "$WAIT_SECONDS" "PgBouncer to start" pgb_ready; then
    tail -n 20 "$PGB_LOG" >&2 || true; exit 1
  fi
  # the apply compares its next ini with the one PgBouncer runs
  put_file "$PGB_INI.running" 0600 <"$PGB_INI" || true
}
restart_key() { grep -E '^(listen_addr|listen_port|unix_socket_dir|unix_socket_mode|pidfile) ' "$1" 2>/dev/null || true; }

# proxy_check_secrets: the apply's secrets are present and well formed.
proxy_check_secrets() {
  local app_re app_line
  if [ -z "${SECRET_PASSWORD:-}" ]; then log "proxy apply: the PASSWORD secret is missing on stdin"; exit 1; fi
  case "$SECRET_PASSWORD" in *$'\n'* | *$'\r'*) log "proxy apply: the password must not contain line breaks"; exit 1 ;; esac
  if ! [[ "${SECRET_VERIFIER:-}" =~ ^SCRAM-SHA-256\$[0-9]+:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$ ]]; then
    log "proxy apply: the VERIFIER secret on stdin is not a SCRAM-SHA-256 verifier"; exit 1
  fi
  # APP_USERS (optional): application roles' auth-file lines, each "role" "<SCRAM verifier>"
  if [ -n "${SECRET_APP_USERS:-}" ]; then
    app_re='^"[a-z_][a-z0-9_]*" "SCRAM-SHA-256\$[0-9]+:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+"$'
    while IFS= read -r app_line; do
      if ! [[ "$app_line" =~ $app_re ]]; then
        log "proxy apply: an APP_USERS line on stdin is not \"role\" \"<SCRAM-SHA-256 verifier>\""; exit 1
      fi
    done <<<"$SECRET_APP_USERS"
  fi
}

# proxy_write_files: directories, auth file, .pgpass, pgbouncer.ini and haproxy.cfg.new (checked
# with haproxy -c); PGB_CHANGED=1 when the ini or the auth file changed.
PGB_CHANGED=0
proxy_write_files() {
  local pw_escaped i
  # Parents stay traversable by the proxy's OS user (a proxy-only host has no node to make them).
  (umask 022; mkdir -p "$(dirname "$BASE")")
  mkdir -p "$BASE" "$PGB_SOCKDIR"
  chmod 0700 "$BASE" "$PGB_SOCKDIR"
  if [ "$(id -u)" = 0 ]; then chown "$PG_OS_USER" "$BASE" "$PGB_SOCKDIR"; fi
  if ! as_pg test -w "$BASE"; then log "$PG_OS_USER cannot write $BASE (check the parent directories)"; exit 1; fi
  PGB_CHANGED=0
  if {
    printf '%s\n' ';; Managed by pulumi-bdr: do not edit, changes are overwritten on the next `pulumi up`.'
    printf '%s "%s"\n' "$P_USERLIST_USER" "$SECRET_VERIFIER"
    if [ -n "${SECRET_APP_USERS:-}" ]; then printf '%s\n' "$SECRET_APP_USERS"; fi
  } | put_file "$PGB_USERLIST" 0600; then PGB_CHANGED=1; fi
  pw_escaped=$(printf '%s' "$SECRET_PASSWORD" | sed -e 's/[\\:]/\\&/g')
  {
    printf '%s\n' '# Managed by pulumi-bdr: do not edit, changes are overwritten on the next `pulumi up`.'
    printf '*:*:*:%s:%s\n' "$P_PGPASS_USER" "$pw_escaped"
  } | put_file "$PGPASSFILE" 0600 || true
  unset pw_escaped
  if printf '%s' "$P_PGB_INI_TEXT" | put_file "$PGB_INI" 0600; then PGB_CHANGED=1; fi
  printf '%s' "$P_HA_CFG_TEXT" | put_file "$HA_CFG.new" 0600 || true
  # For proxy_handoff back (whose step carries no node list, so a resize leaves it unchanged):
  # the nodes (name TAB dsn; no secret: the password is in .pgpass) and the engine's drain SQL.
  local i
  for i in "${!P_NODE_NAMES[@]}"; do printf '%s\t%s\n' "${P_NODE_NAMES[$i]}" "${P_NODE_DSNS[$i]}"; done |
    put_file "$BASE/nodes.tsv" 0600 || true
  printf '%s' "$P_DRAIN_SQL" | put_file "$BASE/drain.sql" 0600 || true
  printf '%s' "$DRAIN_MARK_SQL" | put_file "$BASE/drain-mark.sql" 0600 || true
  printf '%s' "$DRAIN_APPLIED_SQL" | put_file "$BASE/drain-applied.sql" 0600 || true
  printf '%s\n' "$DRAIN_TIMEOUT" | put_file "$BASE/drain.seconds" 0600 || true
  if ! "$HAPROXY_BIN" -c -q -f "$HA_CFG.new" >&2; then log "haproxy -c rejected the rendered configuration $HA_CFG.new"; exit 1; fi
}

# proxy_apply_haproxy: start HAProxy, or switch over / reload it.
proxy_apply_haproxy() {
  local servers current new_status pending
  if ! ha_running; then
    install_cfg
    ha_start
    return 0
  fi
  servers=$(ha_servers)
  current=$(ha_current "$servers")
  if [ -z "$current" ]; then current=$(awk '$1=="server" && !/ backup /{print $2; exit}' "$HA_CFG"); fi
  if [ "$current" != "$NEW_WRITE" ]; then
    new_status=$(status_of "$servers" "$NEW_WRITE")
    if [ -z "$new_status" ]; then
      log "new write node $NEW_WRITE is not in the running configuration: switching over with a PgBouncer pause"
      switchover_pause "$servers" "$current"
    else
      case "$new_status" in UP* | DRAIN* | MAINT* | NOLB*) ;; *) log "new write node $NEW_WRITE is $new_status in HAProxy: refusing to switch over to it"; exit 1 ;; esac
      if [ "$SWITCHOVER_METHOD" = pause ]; then switchover_pause "$servers" "$current"; else switchover_reconnect "$servers" "$current"; fi
    fi
    log "switchover to $NEW_WRITE done"
  elif [ -s "$PENDING" ] || ! cmp -s "$HA_CFG.new" "$HA_CFG" || printf '%s\n' "$servers" | awk -F, '$2 ~ /^(MAINT|DRAIN)/{f=1} END{exit !f}'; then
    if [ -s "$PENDING" ]; then
      pending=$(head -n1 "$PENDING")
      log "finishing the interrupted switchover from $pending"
      if [ "$pending" != "$NEW_WRITE" ]; then drain_old "$pending" "$(status_of "$servers" "$pending")"; fi
    fi
    install_cfg
    ha_reload
    rm -f "$PENDING"
    pgb_reconnect
  else
    rm -f "$HA_CFG.new"
    log "HAProxy configuration unchanged"
  fi
}

# proxy_apply_pgbouncer: start PgBouncer, or reload / restart it when its files changed.
proxy_apply_pgbouncer() {
  if ! pgb_running; then
    pgb_start
  elif [ "$PGB_CHANGED" = 1 ]; then
    if [ "$(restart_key "$PGB_INI")" != "$(restart_key "$PGB_INI.running")" ]; then
      log "PgBouncer listen settings changed: restarting it"
      stop_pid "$(pid_of "$PGB_PID")" pgbouncer INT
      pgb_start
    elif pgb_admin "$WAIT_SECONDS" RELOAD; then
      put_file "$PGB_INI.running" 0600 <"$PGB_INI" || true; log "PgBouncer reloaded"
    else
      log "PgBouncer console refused RELOAD: sending SIGHUP"; kill -HUP "$(pid_of "$PGB_PID")"
      put_file "$PGB_INI.running" 0600 <"$PGB_INI" || true
    fi
  else
    log "PgBouncer configuration unchanged"
  fi
}

proxy_apply() {
  read_secrets
  if [ "${#P_PACKAGES[@]}" -gt 0 ]; then install_packages "${P_PACKAGES[@]}"; fi
  proxy_check_base
  proxy_check_secrets
  # 1. files
  proxy_write_files
  # 2. HAProxy
  proxy_apply_haproxy
  # 3. PgBouncer
  proxy_apply_pgbouncer
}

# proxy_destroy: stops PgBouncer, every HAProxy process the apply started (old ones may still
# finish sessions after a reload), then removes BASE (and its parent when empty).
proxy_destroy() {
  local p
  proxy_check_base
  stop_pid "$(pid_of "$PGB_PID")" pgbouncer TERM
  for p in $( { pid_of "$HA_PID"; cat "$HA_PIDS" 2>/dev/null || true; } | sort -u); do stop_pid "$p" haproxy TERM; done
  rm -rf -- "$BASE"
  # The cluster's directory goes too once nothing else of the cluster is in it.
  rmdir -- "$(dirname "$BASE")" 2>/dev/null || true
  log "proxy stopped and $BASE removed"
}

proxy_probe() {
  local rc=0
  proxy_check_base
  ha_running || { log "HAProxy is not running (pid file $HA_PID)"; rc=1; }
  pgb_running || { log "PgBouncer is not running (pid file $PGB_PID)"; rc=1; }
  exit "$rc"
}

proxy_ensure() {
  local f
  proxy_check_base
  if ha_running && pgb_running; then exit 0; fi
  for f in "$HA_CFG" "$PGB_INI" "$PGB_USERLIST"; do
    if [ ! -s "$f" ]; then log "proxy guard: $f is missing: the proxy step must run again (pulumi up --replace on its resource)"; exit 1; fi
  done
  if ! ha_running; then
    log "HAProxy was not running: starting it from $HA_CFG"
    ha_start
  fi
  if ! pgb_running; then
    log "PgBouncer was not running: starting it from $PGB_INI"
    pgb_start
  fi
}

# proxy_handoff away|back NODE: a node's config step runs this (lib/proxy/scripts.ts
# proxyHandoffScript) around a restart of NODE, so clients never see it.
#   away  when HAProxy sends writes to NODE and another server is UP: records the hand-off
#         ($BASE/handoff.NODE) and moves traffic off NODE (move_off: drain, PgBouncer RECONNECT +
#         WAIT_CLOSE, maintenance); HAProxy's first backup takes the writes. Otherwise nothing.
#   back  when the hand-off of NODE is recorded: first drains the node that took the writes
#         meanwhile (the engine's drain SQL from $BASE/drain.sql on it, so NODE has applied what
#         was written there before writes return; clients keep writing there while it waits; a
#         failed or timed-out drain is logged and the hand-off goes on), then puts NODE's server
#         back in service, waits until HAProxy's check sees it UP, clears the stick table (new
#         connections go to the declared write node again), PgBouncer RECONNECT + WAIT_CLOSE
#         (pooled connections follow), removes the record. Otherwise nothing: the proxy is not
#         touched. Idempotent; a run interrupted after `away` is finished by the next `back`.
proxy_handoff() {
  local op=${1:-} node=${2:-} servers current record
  proxy_check_base
  [[ "$node" =~ ^[a-z][a-z0-9_]*$ ]] || { log "proxy_handoff: bad node name '$node'"; exit 1; }
  record="$BASE/handoff.$node"
  case "$op" in
    away)
      if [ ! -S "$HA_SOCK" ] || ! ha_running; then log "proxy not running: no hand-off of $node"; return 0; fi
      servers=$(ha_servers)
      current=$(ha_current "$servers")
      if [ "$current" != "$node" ]; then log "$node does not take writes (HAProxy sends them to ${current:-no server}): no hand-off"; return 0; fi
      case "$(status_of "$servers" "$node")" in MAINT*) log "$node is already out of service in HAProxy: nothing to move"; return 0 ;; esac
      if ! printf '%s\n' "$servers" | awk -F, -v n="$node" '$1!=n && $2 ~ /^UP/{f=1} END{exit !f}'; then
        log "no other node is UP in HAProxy: $node restarts with writes on it"; return 0
      fi
      printf '%s\n' "$node" | put_file "$record" 0600 || true
      log "hand-off: moving writes off $node before its restart"
      move_off "$node"
      log "hand-off: writes left $node ($(ha_servers | awk -F, '$2 ~ /^UP/{print $1; exit}') takes them)"
      ;;
    back)
      [ -e "$record" ] || return 0
      if ! ha_running; then log "proxy not running: $node's hand-off is finished by its next start"; rm -f "$record"; return 0; fi
      # the node that took the writes: the stuck server, else HAProxy's first UP server but NODE
      servers=$(ha_servers)
      current=$(ha_current "$servers")
      if [ -z "$current" ] || [ "$current" = "$node" ]; then
        current=$(printf '%s\n' "$servers" | awk -F, -v n="$node" '$1!=n && $2 ~ /^UP/{print $1; exit}')
      fi
      handoff_drain "$node" "$current"
      ha_cmd "set server $HA_BACKEND/$node state ready" >/dev/null
      wait_for "$WAIT_SECONDS" "HAProxy to see $node UP" ha_server_up "$node"
      ha_cmd "clear table $HA_BACKEND" >/dev/null
      pgb_move
      rm -f "$record"
      log "hand-off: writes are back on $node"
      ;;
    *) log "proxy_handoff: unknown operation '$op' (away or back)"; exit 1 ;;
  esac
}
# handoff_drain NODE INTERIM: before writes return to NODE, waits (the engine's drain SQL, its own
# timeout) until INTERIM's changes have replicated. Never fails the hand-off: a missing file, an
# unknown or unreachable node, a failed or timed-out wait is logged.
handoff_drain() {
  local node=$1 interim=$2 name d dsn="" rc=0 secs args=()
  if [ -z "$interim" ] || [ "$interim" = "$node" ]; then return 0; fi
  if [ ! -s "$BASE/nodes.tsv" ] || [ ! -s "$BASE/drain.sql" ]; then
    log "hand-off: no node list or drain SQL in $BASE (written by the proxy step): $interim is not drained"; return 0
  fi
  while IFS=$'\t' read -r name d; do
    if [ "$name" = "$interim" ]; then dsn=$d; else args+=("$name" "$d"); fi
  done < "$BASE/nodes.tsv"
  if [ -z "$dsn" ]; then log "hand-off: $interim is not in $BASE/nodes.tsv: not drained"; return 0; fi
  log "hand-off: waiting for the changes written on $interim to replicate before writes return to $node"
  secs=$(cat "$BASE/drain.seconds" 2>/dev/null || true)
  if [ -s "$BASE/drain-mark.sql" ] && [ -s "$BASE/drain-applied.sql" ] && [[ "$secs" =~ ^[1-9][0-9]*$ ]]; then
    DRAIN_MARK_SQL=$(cat "$BASE/drain-mark.sql")
    DRAIN_APPLIED_SQL=$(cat "$BASE/drain-applied.sql")
    drain_to "$secs" "$interim" "$dsn" "${args[@]}" || rc=$?
  else
    sql_peer "$dsn" < "$BASE/drain.sql" >/dev/null || rc=$?
  fi
  if [ "$rc" != 0 ]; then log "hand-off: the drain of $interim failed (exit $rc): writes return to $node anyway"; fi
}
# ha_server_up NODE: HAProxy reports the server UP
ha_server_up() { case "$(status_of "$(ha_servers)" "$1")" in UP*) return 0 ;; *) return 1 ;; esac; }
# ==== lib/sh/ssh-run.sh ====
# shellcheck shell=bash
# pulumi-bdr runner-side SSH: how the runner (the machine that runs `pulumi up`) reaches a remote
# host with the system OpenSSH client. Used by forget-peers.sh (a peer's forget) and by the remote
# hosts' process guards (lib/hosts/guard.ts). Sourced first; functions only.
#
# The private key comes in an environment variable named PULUMI_BDR_SSH_KEY_<UNIT> (a secret of
# the resource that runs the script). ssh_keys_private turns those variables into plain shell
# variables at once, so no child process inherits a key; ssh_run writes the key to a private
# temporary file (mktemp: mode 0600) for the one ssh call, which removes it as soon as it has
# logged in (LocalCommand), and removes it again afterwards (a failed login). A key never
# appears on a command line or in a log.
#
# - ssh_keys_private: unexports every PULUMI_BDR_SSH_KEY_* variable (call it first);
# - ssh_run HOST PORT USER KEYVAR REMOTE-COMMAND: OpenSSH with the key from the shell variable
#   named KEYVAR, stdin passed through. Host keys are not checked, as the command provider's own
#   SSH connection does not check them either;
# - ssh_bash HOST PORT USER KEYVAR SUDO [ARG...]: `bash -s -- ARG...` on the host (SUDO=1:
#   `sudo -n` in front) through ssh_run, the script on stdin; its exit status is the script's.

ssh_keys_private() {
  local key_var
  while read -r key_var; do export -n "${key_var?}"; done < <(compgen -e | grep "^PULUMI_BDR_SSH_KEY_" || true)
}

ssh_run() {
  local host=$1 port=$2 user=$3 keyvar=$4 cmd=$5 kf rc=0
  [[ "$keyvar" =~ ^PULUMI_BDR_SSH_KEY_[A-Z0-9_]+$ ]] || { echo "pulumi-bdr: not an SSH key variable: '$keyvar'" >&2; return 1; }
  [ -n "${!keyvar:-}" ] || { echo "pulumi-bdr: no SSH key in $keyvar" >&2; return 1; }
  kf=$(mktemp) || return 1
  [[ "$kf" =~ ^[A-Za-z0-9/._-]+$ ]] || { rm -f "$kf"; echo "pulumi-bdr: unusable temporary file name '$kf'" >&2; return 1; }
  printf "%s\n" "${!keyvar}" > "$kf"
  ssh -i "$kf" -p "$port" -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
    -o ConnectTimeout=10 -o LogLevel=ERROR -o PermitLocalCommand=yes -o "LocalCommand=rm -f $kf" \
    "$user@$host" "$cmd" || rc=$?
  rm -f "$kf"
  return "$rc"
}

ssh_bash() {
  local host=$1 port=$2 user=$3 keyvar=$4 sudo=$5 cmd
  shift 5
  cmd="bash -s --"
  [ "$#" -eq 0 ] || cmd+=$(printf ' %q' "$@")
  [ "$sudo" != 1 ] || cmd="sudo -n $cmd"
  ssh_run "$host" "$port" "$user" "$keyvar" "$cmd"
}
# ==== lib/sh/watch-ctl.sh ====
# shellcheck shell=bash
# pulumi-bdr: control of a node's replication watcher (the engine's watcher body, e.g.
# pglogical-watch.sh, in $PG_RUN/watch.sh). Sourced by the node's server step scripts after
# common.sh, when N_WATCHER=1 (node-server.sh calls these functions then).
#
# Values: N_WATCH_TEXT (watch_install, watch_ensure only) the whole file $PG_RUN/watch.sh: the
# node's values, common.sh and the engine's watcher body, rendered by lib/hosts/watcher.ts.
#
# - watch_pid: prints the watcher's pid when $PG_RUN/watch.pid names a live process running
#   $PG_RUN/watch.sh; fails otherwise;
# - watch_install: writes N_WATCH_TEXT to $PG_RUN/watch.sh (mode 700, as the server's OS user)
#   and stops a running watcher when the text changed, so watch_start runs the new one;
# - watch_start: starts the watcher unless one runs: with common.sh's `daemon` (the OS user, a clean
#   environment), in a session of its own (setsid -f), stdin/stdout/stderr detached, so the step
#   that starts it does not wait for it; then waits until it wrote its pid file;
# - watch_stop: stops the watcher's whole process group and removes its pid file. Idempotent;
# - watch_ensure: watch_install, then watch_start (the server step and the guard's ensure).
watch_pid() {
  local pid
  pid=$(cat "$PG_RUN/watch.pid" 2>/dev/null) || return 1
  [[ "$pid" =~ ^[1-9][0-9]*$ ]] || return 1
  tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF "$PG_RUN/watch.sh" || return 1
  printf '%s\n' "$pid"
}
watch_install() {
  if printf '%s' "$N_WATCH_TEXT" | safe_write "$PG_RUN/watch.sh" 700; then watch_stop; fi
}
watch_start() {
  watch_pid >/dev/null && return 0
  daemon setsid -f bash "$PG_RUN/watch.sh" </dev/null >/dev/null 2>&1
  for _ in $(seq 1 400); do watch_pid >/dev/null && return 0; sleep 0.02; done
  log "the replication watcher of port $PG_PORT did not start (see $PG_RUN/watch.log)"
  return 1
}
watch_stop() {
  local pid
  pid=$(watch_pid) || { as_pg rm -f "$PG_RUN/watch.pid"; return 0; }
  as_pg kill -TERM -- "-$pid" 2>/dev/null || as_pg kill -TERM "$pid" 2>/dev/null || true
  # Gone, or a zombie its new parent has not reaped yet.
  for _ in $(seq 1 250); do
    case "$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null)" in "" | Z) break ;; esac
    sleep 0.02
  done
  as_pg rm -f "$PG_RUN/watch.pid"
}
watch_ensure() {
  watch_install
  watch_start
}
