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
