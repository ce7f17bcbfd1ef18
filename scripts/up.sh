#!/usr/bin/env bash
# The quick start's second command: a real `pulumi up` of the embedded default (examples/local)
# with a local file backend. On first use it creates the stack (default `dev`) and stores a random
# replication password as a secret stack config value. Extra arguments go to `pulumi up`.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
source scripts/pulumi-env.sh
npm run build >/dev/null
stack=${STACK:-dev}
pulumi stack select "$stack" >/dev/null 2>&1 || pulumi stack init "$stack" >/dev/null
if ! pulumi config get replicationPassword >/dev/null 2>&1; then
  # The value goes through stdin, never through a command line.
  head -c 32 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 32 | pulumi config set --secret replicationPassword
fi
exec pulumi up --yes "$@"
