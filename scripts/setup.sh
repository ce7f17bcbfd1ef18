#!/usr/bin/env bash
# One set-up command for a fresh Debian 12 machine (run as root, or with sudo available):
# the Debian packages the embedded default needs, the npm dependencies, and the Pulumi engine
# (built from Go modules when no `pulumi` is on PATH; see scripts/install-pulumi.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

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
# The packages' own services are not ours: the cluster runs its own servers and proxies.
for svc in haproxy pgbouncer postgresql; do
  $SUDO service "$svc" stop >/dev/null 2>&1 || true
done

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
npm run build >/dev/null

# The Pulumi CLI, language host and plugins: downloaded, or built from the upstream sources in
# PULUMI_BDR_PLUGIN_SOURCES (CI: ../shared/third_party) where they cannot be downloaded.
if [ "${SKIP_PULUMI_ENGINE:-}" != "1" ]; then
  bash scripts/install-pulumi.sh
fi
echo "setup: done. Now: source scripts/pulumi-env.sh && pulumi up --stack dev"
