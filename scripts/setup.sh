#!/usr/bin/env bash
# One set-up command for a fresh Debian 12 machine (run as root, or with sudo available):
# the Debian packages the embedded default needs, the npm dependencies, and the Pulumi engine
# (built from Go modules when no `pulumi` is on PATH; see scripts/install-pulumi.sh).
#
#   bash scripts/setup.sh [--stop-services]
#
# It leaves the machine's own services alone: a PostgreSQL, HAProxy or PgBouncer that the
# distribution runs keeps running. The quick start's cluster uses its own ports (PostgreSQL
# 15432.., HAProxy 15533, PgBouncer 15532), away from the distribution's 5432 / 6432; this script
# says which services run and whether any of those ports is taken. `--stop-services` stops the
# distribution's postgresql, haproxy and pgbouncer services (what earlier versions did silently).
set -euo pipefail
cd "$(dirname "$0")/.."

STOP_SERVICES=0
for arg in "$@"; do
  case "$arg" in
  --stop-services) STOP_SERVICES=1 ;;
  *)
    echo "setup: unknown argument '$arg' (allowed: --stop-services)" >&2
    exit 2
    ;;
  esac
done

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo -n"
PACKAGES=(postgresql-15 postgresql-client-15 postgresql-15-pglogical postgresql-contrib haproxy pgbouncer socat
  openssh-server openssh-client iproute2 util-linux sudo procps ca-certificates git
  docker.io debootstrap shellcheck)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The distribution's services are the user's, not ours: the cluster runs its own servers and
# proxies on other ports. Report them; stop them only when asked.
for svc in postgresql haproxy pgbouncer; do
  if $SUDO service "$svc" status >/dev/null 2>&1; then
    if [ "$STOP_SERVICES" = 1 ]; then
      echo "setup: stopping the distribution's $svc service (--stop-services)"
      $SUDO service "$svc" stop
    else
      echo "setup: the distribution's $svc service is running; left alone (the quick start does not use its ports)"
    fi
  fi
done
if command -v ss >/dev/null; then
  for port in 15432 15433 15434 15532 15533; do
    who=$(ss -Hltnp "sport = :$port" 2>/dev/null | head -n 1)
    if [ -n "$who" ]; then
      echo "setup: port $port, used by the quick start, is taken: $who" >&2
      echo "setup:   choose others with: pulumi config set basePort|haproxyPort|pgbouncerPort N" >&2
    fi
  done
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
# Build errors are shown (tsc prints only problems) and stop the set-up.
if ! npm run --silent build; then
  echo "setup: the TypeScript build failed (above); fix it and run scripts/setup.sh again" >&2
  exit 1
fi

# The Pulumi CLI, language host and plugins: downloaded, or built from the upstream sources in
# PULUMI_BDR_PLUGIN_SOURCES (CI: ../shared/third_party) where they cannot be downloaded.
if [ "${SKIP_PULUMI_ENGINE:-}" != "1" ]; then
  bash scripts/install-pulumi.sh
fi
echo "setup: done. Now: npm run up   (scripts/up.sh: creates the stack 'dev' and its passphrase on first use)"
