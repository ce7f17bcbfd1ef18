#!/usr/bin/env bash
# Test fixture: N "remote machines" on this machine, each a Linux network namespace running its own
# sshd, for the end-to-end tests of the SSH (remote) host kind. Needs root, iproute2 and openssh-server.
#
#   scripts/netns-hosts.sh up [N]     create or converge to N hosts (default 3); idempotent
#   scripts/netns-hosts.sh down [N]   remove every bdrh* host and the rest (N is ignored); also after
#                                     a failed, partial or killed up
#   scripts/netns-hosts.sh status     print the summary of a running fixture (exit 1 if none)
#
# Layout (fixed names; one fixture per machine at a time, calls are serialized with flock):
#   bridge bdrbr0 in the root namespace, 10.213.0.1/24
#   namespace bdrhI (I = 1..N): eth0 = 10.213.0.(10+I)/24 (veth peer bdrvI on the bridge), lo up,
#     default route via 10.213.0.1 (only to reach the root namespace: forwarding is off on bdrbr0,
#     so nothing a namespace sends is ever routed on to another interface)
#   sshd per namespace on <address>:22: root login with the fixture key only, no passwords.
#
# Safety: before anything else `up` adds `unreachable 10.213.0.0/24 metric 4242`, so a packet for a
# test address can never follow the default route off the machine, even while the bridge is down or
# missing. The kernel's own route for the bridge address (metric 0) wins while the bridge is up.
#
# State (env NETNS_STATE_DIR, default /var/tmp/pulumi-bdr-netns; 0700, root): client key pair
# id_ed25519(.pub), hosts/bdrhI/{sshd_config,ssh_host_ed25519_key,sshd.pid,sshd.log}, hosts.env.
# sshd's StrictModes refuses an authorized_keys file below a group/world-writable directory (such as
# /var/tmp); the file then lives in /run/pulumi-bdr-netns/<checksum of the state dir path>/ instead
# (`auth_dir` below), else in <state>/auth/. Either way: 0600 in a 0700 root-owned directory.
#
# The namespaces share the filesystem (and hostname, users, /tmp) with the root namespace: only the
# network is separate. Two "hosts" writing the same path write the same file, so whatever runs on
# them must keep per-host paths apart (the library does so through each host's baseDir).
#
# Env: NETNS_KEEP_ON_FAILURE=1 keeps what a failed `up` created (for debugging; run `down` after);
# by default a failed `up` prints the sshd logs and runs `down`.
set -euo pipefail

SUBNET_PREFIX=10.213.0
SUBNET=10.213.0.0/24
BRIDGE=bdrbr0
BRIDGE_ADDR=10.213.0.1
NS_PREFIX=bdrh
VETH_PREFIX=bdrv
PEER_PREFIX=bdrp
ROUTE_METRIC=4242
MAX_HOSTS=50
SSHD=/usr/sbin/sshd
MARKER=.pulumi-bdr-netns
STATE_DIR=$(realpath -m "${NETNS_STATE_DIR:-/var/tmp/pulumi-bdr-netns}")
SELF=$(realpath "${BASH_SOURCE[0]}")

log() { echo "netns-hosts: $*" >&2; }
die() {
  log "error: $*"
  exit 1
}
usage() {
  sed -n '2,9p' "$SELF" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

host_addr() { echo "$SUBNET_PREFIX.$((10 + $1))"; }

# 0 when the path and every existing ancestor is root-owned and not group/world-writable (what
# sshd's StrictModes demands of the directories above an authorized_keys file).
secure_path() {
  local p=$1 uid mode
  while :; do
    if [ -e "$p" ]; then
      read -r uid mode < <(stat -L -c '%u %a' "$p")
      [ "$uid" = 0 ] || return 1
      (((8#$mode & 8#022) == 0)) || return 1
    fi
    [ "$p" = / ] && return 0
    p=$(dirname "$p")
  done
}

run_auth_dir() { echo "/run/pulumi-bdr-netns/$(printf '%s' "$STATE_DIR" | cksum | cut -d' ' -f1)"; }

auth_dir() {
  if secure_path "$STATE_DIR"; then echo "$STATE_DIR/auth"; else run_auth_dir; fi
}

our_namespaces() { ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^${NS_PREFIX}[0-9]+\$" || true; }
our_links() { ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' |
  grep -E "^(${VETH_PREFIX}|${PEER_PREFIX})[0-9]+\$" || true; }
route_present() { ip route show table main exact "$SUBNET" 2>/dev/null | grep -q "^unreachable.*metric $ROUTE_METRIC"; }
ns_exists() { our_namespaces | grep -qx "$1"; }
# Running and not a zombie (an exited daemon stays a zombie until PID 1 reaps it, which can take a
# second in a container).
pid_running() {
  local st
  st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}
pid_alive_in_ns() { [ -n "$1" ] && pid_running "$1" && [ "$(ip netns identify "$1" 2>/dev/null)" = "$2" ]; }

check_state_dir() {
  [ "$STATE_DIR" != / ] || die "refusing state dir /"
  if [ -L "$STATE_DIR" ]; then die "state dir $STATE_DIR is a symlink"; fi
  if [ -e "$STATE_DIR" ]; then
    [ -d "$STATE_DIR" ] || die "state dir $STATE_DIR is not a directory"
    [ "$(stat -c %u "$STATE_DIR")" = 0 ] || die "state dir $STATE_DIR is not owned by root"
    if [ ! -e "$STATE_DIR/$MARKER" ] && [ -n "$(ls -A "$STATE_DIR")" ]; then
      die "state dir $STATE_DIR exists, is not empty and was not made by this script"
    fi
  fi
}

prepare_state() {
  check_state_dir
  mkdir -p "$STATE_DIR"
  chmod 0700 "$STATE_DIR"
  touch "$STATE_DIR/$MARKER"
  mkdir -p "$STATE_DIR/hosts" && chmod 0700 "$STATE_DIR/hosts"
  if [ ! -f "$STATE_DIR/id_ed25519" ] || [ ! -f "$STATE_DIR/id_ed25519.pub" ]; then
    rm -f "$STATE_DIR/id_ed25519" "$STATE_DIR/id_ed25519.pub"
    ssh-keygen -q -t ed25519 -N '' -C "pulumi-bdr netns fixture" -f "$STATE_DIR/id_ed25519"
  fi
  chmod 0600 "$STATE_DIR/id_ed25519"
  AUTH_DIR=$(auth_dir)
  mkdir -p "$AUTH_DIR" && chmod 0700 "$(dirname "$AUTH_DIR")" "$AUTH_DIR"
  chmod 0700 "$AUTH_DIR"
  # Only from the test subnet: the key is of no use anywhere else.
  local tmp="$AUTH_DIR/authorized_keys.tmp"
  (umask 077 && printf 'from="%s" %s\n' "$SUBNET" "$(cat "$STATE_DIR/id_ed25519.pub")" >"$tmp")
  mv -f "$tmp" "$AUTH_DIR/authorized_keys"
  chmod 0600 "$AUTH_DIR/authorized_keys"
  secure_path "$AUTH_DIR/authorized_keys" || die "$AUTH_DIR is not a StrictModes-safe path"
  # sshd's privilege separation directory (not removed by `down`: the system's sshd uses it too).
  mkdir -p /run/sshd && chmod 0755 /run/sshd
}

route_subnet_locally() {
  route_present || ip route add unreachable "$SUBNET" metric "$ROUTE_METRIC"
  route_present || die "could not route $SUBNET locally"
}

bridge_up() {
  ip link show "$BRIDGE" >/dev/null 2>&1 || ip link add "$BRIDGE" type bridge
  sysctl -qw "net.ipv4.conf.$BRIDGE.forwarding=0"
  sysctl -qw "net.ipv6.conf.$BRIDGE.disable_ipv6=1" 2>/dev/null || true
  ip addr replace "$BRIDGE_ADDR/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
}

# Returns 1 when the config on disk was already this one.
write_sshd_config() {
  local i=$1 dir=$2 addr
  addr=$(host_addr "$i")
  cat >"$dir/sshd_config.tmp" <<EOF
# Generated by scripts/netns-hosts.sh for test host ${NS_PREFIX}${i}; no Include of /etc/ssh.
ListenAddress ${addr}:22
AddressFamily inet
HostKey ${dir}/ssh_host_ed25519_key
PidFile ${dir}/sshd.pid
AuthorizedKeysFile ${AUTH_DIR}/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitEmptyPasswords no
UsePAM no
StrictModes yes
UseDNS no
PrintMotd no
PrintLastLog no
X11Forwarding no
AllowTcpForwarding yes
# Deployments open many sessions at once from one source.
MaxStartups 64:30:256
MaxSessions 64
LoginGraceTime 30
LogLevel VERBOSE
AcceptEnv LANG LC_*
Subsystem sftp internal-sftp
EOF
  if cmp -s "$dir/sshd_config.tmp" "$dir/sshd_config"; then
    rm -f "$dir/sshd_config.tmp"
    return 1
  fi
  mv -f "$dir/sshd_config.tmp" "$dir/sshd_config"
}

host_up() {
  local i=$1 ns=${NS_PREFIX}$1 veth=${VETH_PREFIX}$1 peer=${PEER_PREFIX}$1 addr dir pid=""
  addr=$(host_addr "$i")
  dir="$STATE_DIR/hosts/$ns"
  ns_exists "$ns" || ip netns add "$ns"
  ip -n "$ns" link set lo up
  # A veth whose namespace end is missing (an interrupted earlier run) is rebuilt.
  if ip link show "$veth" >/dev/null 2>&1 && ! ip -n "$ns" link show eth0 >/dev/null 2>&1; then
    ip link del "$veth"
  fi
  ip link del "$peer" >/dev/null 2>&1 || true
  if ! ip link show "$veth" >/dev/null 2>&1; then
    ip link add "$veth" type veth peer name "$peer"
    ip link set "$peer" netns "$ns"
    ip -n "$ns" link set "$peer" name eth0
  fi
  sysctl -qw "net.ipv6.conf.$veth.disable_ipv6=1" 2>/dev/null || true
  ip link set "$veth" master "$BRIDGE"
  ip link set "$veth" up
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 2>/dev/null || true
  ip -n "$ns" addr replace "$addr/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" route replace default via "$BRIDGE_ADDR" dev eth0

  mkdir -p "$dir" && chmod 0700 "$dir"
  [ -f "$dir/ssh_host_ed25519_key" ] ||
    ssh-keygen -q -t ed25519 -N '' -C "$ns host key" -f "$dir/ssh_host_ed25519_key"
  chmod 0600 "$dir/ssh_host_ed25519_key"
  local changed=0
  if write_sshd_config "$i" "$dir"; then changed=1; fi
  "$SSHD" -t -f "$dir/sshd_config"

  [ -f "$dir/sshd.pid" ] && pid=$(cat "$dir/sshd.pid" 2>/dev/null || true)
  if pid_alive_in_ns "$pid" "$ns"; then
    # Running: re-read the config only if it changed (a SIGHUP briefly closes the listener).
    if [ "$changed" = 1 ]; then kill -HUP "$pid"; fi
  else
    rm -f "$dir/sshd.pid"
    # fd 9 holds the lock: the daemon must not inherit it.
    ip netns exec "$ns" "$SSHD" -f "$dir/sshd_config" -E "$dir/sshd.log" </dev/null >>"$dir/sshd.log" 2>&1 9>&-
  fi
}

wait_listening() {
  local i=$1 ns=${NS_PREFIX}$1 addr dir deadline
  addr=$(host_addr "$i")
  dir="$STATE_DIR/hosts/$ns"
  deadline=$((SECONDS + 15))
  until [ -s "$dir/sshd.pid" ] && ip netns exec "$ns" ss -Hltn "src $addr and sport = :22" | grep -q LISTEN; do
    if ((SECONDS >= deadline)); then
      tail -n 20 "$dir/sshd.log" >&2 || true
      die "sshd of $ns is not listening on $addr:22"
    fi
    sleep 0.05
  done
}

kill_pids() { # kill -TERM, wait up to 3 s, then -KILL
  local pids=("$@") p alive i
  [ "${#pids[@]}" -gt 0 ] || return 0
  kill -TERM "${pids[@]}" 2>/dev/null || true
  for ((i = 0; i < 60; i++)); do
    alive=()
    for p in "${pids[@]}"; do if pid_running "$p"; then alive+=("$p"); fi; done
    [ "${#alive[@]}" -gt 0 ] || return 0
    sleep 0.05
  done
  kill -KILL "${alive[@]}" 2>/dev/null || true
}

host_down() {
  local ns=$1 idx veth peer pids=() p
  idx=${ns#"$NS_PREFIX"}
  veth=${VETH_PREFIX}$idx
  peer=${PEER_PREFIX}$idx
  if [ -f "$STATE_DIR/hosts/$ns/sshd.pid" ]; then
    p=$(cat "$STATE_DIR/hosts/$ns/sshd.pid" 2>/dev/null || true)
    if [ -n "$p" ] && [ "$(cat "/proc/$p/comm" 2>/dev/null || true)" = sshd ]; then pids+=("$p"); fi
  fi
  if ns_exists "$ns"; then
    # Everything still running in there: sshd, its sessions, servers a test started.
    while read -r p; do [ -n "$p" ] && pids+=("$p"); done < <(ip netns pids "$ns" 2>/dev/null || true)
  fi
  kill_pids "${pids[@]}"
  if ns_exists "$ns"; then ip netns del "$ns" || true; fi
  ip link del "$veth" >/dev/null 2>&1 || true
  ip link del "$peer" >/dev/null 2>&1 || true
  rm -rf "${STATE_DIR:?}/hosts/$ns"
}

print_summary() {
  local n=$1 i
  {
    echo "NETNS_STATE_DIR=$STATE_DIR"
    echo "NETNS_KEY=$STATE_DIR/id_ed25519"
    echo "NETNS_AUTHORIZED_KEYS=$(auth_dir)/authorized_keys"
    echo "NETNS_BRIDGE=$BRIDGE_ADDR"
    for ((i = 1; i <= n; i++)); do echo "NETNS_HOST=${NS_PREFIX}$i $(host_addr "$i")"; done
  } | tee "$STATE_DIR/hosts.env.tmp"
  mv -f "$STATE_DIR/hosts.env.tmp" "$STATE_DIR/hosts.env"
  log "up: $n host(s); try: ssh -i $STATE_DIR/id_ed25519 root@$(host_addr 1)"
}

on_up_exit() {
  local rc=$?
  [ "$rc" -ne 0 ] || return 0
  trap - EXIT
  set +e
  log "up failed (exit $rc)"
  local f
  for f in "$STATE_DIR"/hosts/*/sshd.log; do
    if [ -f "$f" ]; then
      log "--- $f"
      tail -n 20 "$f" >&2
    fi
  done
  if [ "${NETNS_KEEP_ON_FAILURE:-}" = 1 ]; then
    log "NETNS_KEEP_ON_FAILURE=1: leaving what was created; run '$SELF down'"
  else
    log "cleaning up"
    cmd_down >&2 || true
  fi
  exit "$rc"
}

cmd_up() {
  local n=${1:-3} i ns
  [[ "$n" =~ ^[0-9]+$ ]] && ((n >= 1 && n <= MAX_HOSTS)) || die "N must be 1..$MAX_HOSTS (got '$n')"
  command -v "$SSHD" >/dev/null || die "$SSHD not found (install openssh-server)"
  command -v ssh-keygen >/dev/null || die "ssh-keygen not found (install openssh-client)"
  check_state_dir
  trap on_up_exit EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  # First of all: no packet for the test subnet may follow the default route.
  route_subnet_locally
  bridge_up
  prepare_state
  for ((i = 1; i <= n; i++)); do host_up "$i"; done
  # Hosts beyond N from an earlier, bigger `up`.
  for ns in $(our_namespaces); do
    if ((${ns#"$NS_PREFIX"} > n)); then host_down "$ns"; fi
  done
  for ((i = 1; i <= n; i++)); do wait_listening "$i"; done
  print_summary "$n"
  trap - EXIT INT TERM
}

cmd_down() {
  local ns l leftovers=()
  for ns in $(our_namespaces); do host_down "$ns"; done
  # Hosts whose namespace is already gone but whose sshd may still run (pid files).
  if [ -d "$STATE_DIR/hosts" ]; then
    for ns in "$STATE_DIR"/hosts/*; do
      if [ -d "$ns" ]; then host_down "$(basename "$ns")"; fi
    done
  fi
  for l in $(our_links); do ip link del "$l" >/dev/null 2>&1 || true; done
  ip link del "$BRIDGE" >/dev/null 2>&1 || true
  while route_present; do ip route del unreachable "$SUBNET" metric "$ROUTE_METRIC" || break; done
  rm -rf "$(run_auth_dir)" "${STATE_DIR:?}/auth"
  rmdir /run/pulumi-bdr-netns 2>/dev/null || true
  # Only a directory this script made (or an empty one) is removed.
  if (check_state_dir); then rm -rf "${STATE_DIR:?}"; fi

  [ -z "$(our_namespaces)" ] || leftovers+=("namespaces: $(our_namespaces | tr '\n' ' ')")
  [ -z "$(our_links)" ] || leftovers+=("links: $(our_links | tr '\n' ' ')")
  ! ip link show "$BRIDGE" >/dev/null 2>&1 || leftovers+=("bridge $BRIDGE")
  ! route_present || leftovers+=("route unreachable $SUBNET")
  [ ! -e "$STATE_DIR" ] || leftovers+=("state dir $STATE_DIR")
  if [ "${#leftovers[@]}" -gt 0 ]; then die "down left: ${leftovers[*]}"; fi
  log "down: clean"
}

cmd_status() {
  local n i ns
  [ -f "$STATE_DIR/hosts.env" ] || die "no fixture in $STATE_DIR"
  n=$(grep -c '^NETNS_HOST=' "$STATE_DIR/hosts.env")
  for ((i = 1; i <= n; i++)); do
    ns=${NS_PREFIX}$i
    pid_alive_in_ns "$(cat "$STATE_DIR/hosts/$ns/sshd.pid" 2>/dev/null || true)" "$ns" ||
      die "sshd of $ns is not running"
  done
  cat "$STATE_DIR/hosts.env"
}

[ $# -ge 1 ] || usage
[ "$(id -u)" = 0 ] || die "must run as root (network namespaces, sshd)"
command -v ip >/dev/null || die "ip (iproute2) not found"

# One call at a time: the names and the subnet are fixed.
exec 9<"$SELF"
flock -w 300 9 || die "another netns-hosts.sh is still running"

case "$1" in
up)
  [ $# -le 2 ] || usage
  cmd_up "${2:-3}"
  ;;
down)
  [ $# -le 2 ] || usage
  cmd_down
  ;;
status) cmd_status ;;
*) usage ;;
esac
