#!/bin/bash
# A private Docker engine for pulumi-bdr's docker-host tests, and the base image they build on.
#
#   scripts/docker-engine.sh start        start dockerd (idempotent); prints the DOCKER_HOST to use
#   scripts/docker-engine.sh stop         stop it by the pid in its pid file (containers stop with it)
#   scripts/docker-engine.sh status       exit 0 when it answers
#   scripts/docker-engine.sh base-image   make sure the base image is loaded; prints its reference
#   scripts/docker-engine.sh packages     print the Debian packages of the base image
#
# The engine is Debian's docker.io: `dockerd --storage-driver=vfs --iptables=false` with its own
# data root, exec root, pid file and Unix socket, so it never touches a system Docker. Without
# iptables there is no NAT: containers cannot reach a package mirror, so the base image is a
# Debian 12 root file system made by `debootstrap --variant=minbase --include=<packages>` and
# loaded with `docker import`; the rootfs tarball is cached (keyed by the package list) under
# $PULUMI_BDR_IMAGE_CACHE, since debootstrap takes minutes.
#
# Environment (defaults in brackets):
#   PULUMI_BDR_DOCKER_ROOT   data root and log     [/var/lib/pulumi-bdr-test/docker]
#   PULUMI_BDR_DOCKER_RUN    exec root, pid, sock  [/run/pulumi-bdr-test]
#   PULUMI_BDR_IMAGE_CACHE   rootfs tarballs       [~/.cache/pulumi-bdr/images]
#   PULUMI_BDR_APT_MIRROR    debootstrap mirror    [first deb.debian.org-style URI in apt sources,
#                                                   else http://deb.debian.org/debian]
set -euo pipefail

DATA_ROOT=${PULUMI_BDR_DOCKER_ROOT:-/var/lib/pulumi-bdr-test/docker}
RUN_ROOT=${PULUMI_BDR_DOCKER_RUN:-/run/pulumi-bdr-test}
CACHE_DIR=${PULUMI_BDR_IMAGE_CACHE:-$HOME/.cache/pulumi-bdr/images}
SOCKET="$RUN_ROOT/docker.sock"
PIDFILE="$RUN_ROOT/dockerd.pid"
EXEC_ROOT="$RUN_ROOT/exec"
LOG="$DATA_ROOT/../dockerd.log"
BRIDGE_MARK="$RUN_ROOT/docker0.created-by-us"
DOCKER_HOST_URL="unix://$SOCKET"

# Everything a node or proxy container needs, installed at debootstrap time (no network later).
PACKAGES=(
  bash ca-certificates coreutils procps
  postgresql-15 postgresql-client-15 postgresql-15-pglogical
  haproxy pgbouncer socat
)
SUITE=bookworm

log() { printf 'docker-engine: %s\n' "$*" >&2; }
die() {
  log "$*"
  exit 1
}

dk() { docker -H "$DOCKER_HOST_URL" "$@"; }

running_pid() {
  local pid
  [ -s "$PIDFILE" ] || return 1
  pid=$(cat "$PIDFILE")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ] || return 1
  printf '%s\n' "$pid"
}

answers() { dk version --format '{{.Server.Version}}' >/dev/null 2>&1; }

cmd_start() {
  command -v dockerd >/dev/null || die "dockerd not found: apt-get install docker.io"
  command -v docker >/dev/null || die "docker (client) not found: apt-get install docker.io"
  if running_pid >/dev/null && answers; then
    printf '%s\n' "$DOCKER_HOST_URL"
    return 0
  fi
  mkdir -p "$DATA_ROOT" "$RUN_ROOT" "$EXEC_ROOT"
  rm -f "$SOCKET" "$PIDFILE"
  # dockerd makes the default bridge docker0 when there is none; `stop` removes it only then.
  if ip link show docker0 >/dev/null 2>&1; then rm -f "$BRIDGE_MARK"; else : >"$BRIDGE_MARK"; fi
  # Its own containerd lives under the exec root too (dockerd starts one when none is given).
  setsid dockerd \
    --storage-driver=vfs \
    --iptables=false \
    --ip-masq=false \
    --data-root "$DATA_ROOT" \
    --exec-root "$EXEC_ROOT" \
    --pidfile "$PIDFILE" \
    -H "$DOCKER_HOST_URL" \
    --userland-proxy=true \
    </dev/null >>"$LOG" 2>&1 &
  local i
  for i in $(seq 1 120); do
    if answers; then
      log "dockerd $(dk version --format '{{.Server.Version}}') on $DOCKER_HOST_URL (pid $(cat "$PIDFILE"))"
      printf '%s\n' "$DOCKER_HOST_URL"
      return 0
    fi
    kill -0 $! 2>/dev/null || break
    sleep 0.5
    : "$i"
  done
  tail -n 30 "$LOG" >&2 || true
  die "dockerd did not answer on $SOCKET"
}

cmd_stop() {
  local pid i
  if ! pid=$(running_pid); then
    log "not running"
    rm -f "$PIDFILE"
    remove_bridge
    return 0
  fi
  kill -TERM "$pid"
  for i in $(seq 1 120); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
    : "$i"
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "dockerd $pid ignored TERM for 60 s: KILL"
    kill -KILL "$pid" || true
  fi
  # dockerd's own containerd (and its shims) are its children; make sure none outlives it.
  local c
  for c in $(pgrep -f -- "$EXEC_ROOT/containerd" || true); do
    kill -TERM "$c" 2>/dev/null || true
  done
  rm -f "$PIDFILE" "$SOCKET"
  log "stopped dockerd $pid"
  remove_bridge
}

# Removes docker0 when this engine created it (dockerd leaves it behind when it stops).
remove_bridge() {
  [ -e "$BRIDGE_MARK" ] || return 0
  if ip link show docker0 >/dev/null 2>&1; then
    ip link delete docker0 && log "removed the docker0 bridge it had created"
  fi
  rm -f "$BRIDGE_MARK"
}

cmd_status() {
  running_pid >/dev/null && answers
}

# The apt mirror debootstrap uses: the host's own (the only network this machine may reach).
mirror() {
  if [ -n "${PULUMI_BDR_APT_MIRROR:-}" ]; then
    printf '%s\n' "$PULUMI_BDR_APT_MIRROR"
    return
  fi
  local uri
  uri=$(grep -rhoE '^(URIs:|deb) *https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d 2>/dev/null |
    grep -oE 'https?://[^ ]+' | head -n 1 || true)
  printf '%s\n' "${uri:-http://deb.debian.org/debian}"
}

image_key() {
  printf '%s\n' "$SUITE" "${PACKAGES[@]}" "v2" | sha256sum | cut -c1-12
}

# Builds (or reuses) the rootfs tarball and loads it; prints the image reference.
cmd_base_image() {
  local key ref tarball
  key=$(image_key)
  ref="pulumi-bdr-base:$SUITE-$key"
  if dk image inspect "$ref" >/dev/null 2>&1; then
    printf '%s\n' "$ref"
    return 0
  fi
  mkdir -p "$CACHE_DIR"
  tarball="$CACHE_DIR/$SUITE-minbase-$key.tar"
  if [ ! -s "$tarball" ]; then
    command -v debootstrap >/dev/null || die "debootstrap not found: apt-get install debootstrap"
    local root include start
    start=$(date +%s)
    root=$(mktemp -d /var/tmp/pulumi-bdr-rootfs.XXXXXX)
    # shellcheck disable=SC2064 # expand now: the trap must remove this very directory
    trap "rm -rf '$root'" EXIT
    include=$(
      IFS=,
      printf '%s' "${PACKAGES[*]}"
    )
    log "debootstrap --variant=minbase --include=$include $SUITE (a few minutes)"
    debootstrap --variant=minbase --include="$include" "$SUITE" "$root" "$(mirror)" >&2
    # The packages' own cluster is not ours: the component runs initdb in its own directories.
    chroot "$root" /usr/bin/pg_dropcluster 15 main 2>/dev/null || true
    install -d -o 0 -g 0 -m 755 "$root/run/postgresql"
    chroot "$root" chown postgres:postgres /run/postgresql
    chmod 2775 "$root/run/postgresql"
    rm -rf "${root:?}/var/cache/apt/archives/"*.deb "${root:?}/var/lib/apt/lists/"* "${root:?}/dev/"*
    chmod 755 "$root" # mktemp made it 0700, and it becomes the image's /
    tar -C "$root" --numeric-owner -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    rm -rf "$root"
    trap - EXIT
    log "rootfs $tarball ($(du -h "$tarball" | cut -f1)) in $(($(date +%s) - start)) s"
  fi
  local start
  start=$(date +%s)
  dk import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/bash"]' \
    "$tarball" "$ref" >/dev/null
  log "imported $ref in $(($(date +%s) - start)) s"
  printf '%s\n' "$ref"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  base-image) cmd_base_image ;;
  packages) printf '%s\n' "${PACKAGES[@]}" ;;
  host) printf '%s\n' "$DOCKER_HOST_URL" ;;
  *)
    printf 'usage: %s start|stop|status|base-image|packages|host\n' "$0" >&2
    exit 2
    ;;
esac
