#!/usr/bin/env bash
# The quick start's second command: a real `pulumi up` of the embedded default (examples/local)
# with a local file backend. On first use it creates the stack (default `dev`, or $STACK) with a
# generated passphrase and stores a random replication password as a secret stack config value.
# Extra arguments go to `pulumi up`, after `--yes --skip-preview`: the command approves anyway,
# so the preview pass is skipped (`pulumi preview` shows the change first; `npm run up --
# --skip-preview=false` brings the pass back). Bad input still fails before anything is created.
# The build runs only when a source file is newer than the last build (dist/.up-built).
#
# The passphrase encrypts the stack's secrets. It is never a built-in default: unless you give one
# (PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE), a random one is generated when the
# stack is created and kept OUTSIDE the repository, mode 0600, in
#   ${XDG_CONFIG_HOME:-~/.config}/pulumi-bdr/<stack>.passphrase
# which scripts/pulumi-env.sh then names in PULUMI_CONFIG_PASSPHRASE_FILE. Keep that file: without
# it the stack's secrets cannot be decrypted.
set -euo pipefail
cd "$(dirname "$0")/.."
stack=${STACK:-dev}
export STACK="$stack"
# shellcheck disable=SC1091
source scripts/pulumi-env.sh
# Build errors are shown (tsc prints only problems). Skipped when no file the program is built
# from is newer than the last `npm run build` (which ends by touching dist/.up-built).
stamp=dist/.up-built
if [ ! -e "$stamp" ] || [ ! -e dist/examples/local/index.js ] || [ -n "$(find lib examples package.json \
  package-lock.json tsconfig.json Pulumi.yaml -newer "$stamp" -print -quit 2>/dev/null)" ]; then
  npm run --silent build
fi

passfile="${XDG_CONFIG_HOME:-$HOME/.config}/pulumi-bdr/$stack.passphrase"
stack_exists() { pulumi stack ls --json 2>/dev/null | grep -q "\"name\": \"$1\""; }

# Each `pulumi` process costs 0.2-0.4 s here: a new stack takes one (`stack init`, which fails
# when the stack exists), a known one one (`stack select`).
created=0
if [ -z "${PULUMI_CONFIG_PASSPHRASE+x}" ] && [ -z "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]; then
  mkdir -p "$(dirname "$passfile")"
  chmod 0700 "$(dirname "$passfile")"
  (
    umask 077
    head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 40 >"$passfile.tmp"
  )
  # The passphrase is kept only when it created the stack: a stack that exists already was
  # encrypted with another one.
  if ! init_out=$(PULUMI_CONFIG_PASSPHRASE_FILE="$passfile.tmp" pulumi stack init "$stack" 2>&1); then
    rm -f "$passfile.tmp"
    if stack_exists "$stack"; then
      echo "up: stack '$stack' exists but no passphrase is known: set PULUMI_CONFIG_PASSPHRASE or" >&2
      echo "up: PULUMI_CONFIG_PASSPHRASE_FILE (or put it in $passfile, mode 0600)" >&2
    else
      printf '%s\n' "$init_out" >&2
      if grep -q '^encryptionsalt:' "Pulumi.$stack.yaml" 2>/dev/null; then
        echo "up: Pulumi.$stack.yaml holds the encryption salt of an earlier stack '$stack' (removed from" >&2
        echo "up: the backend, its file kept): give that stack's passphrase in PULUMI_CONFIG_PASSPHRASE," >&2
        echo "up: or move Pulumi.$stack.yaml away to start a new stack '$stack'" >&2
      fi
    fi
    exit 1
  fi
  mv "$passfile.tmp" "$passfile"
  export PULUMI_CONFIG_PASSPHRASE_FILE="$passfile"
  created=1
  echo "up: generated the passphrase of stack '$stack' and stored it in $passfile (mode 0600)."
  echo "up: keep it: the stack's secrets cannot be decrypted without it."
elif ! pulumi stack select "$stack" >/dev/null 2>&1; then
  pulumi stack init "$stack" >/dev/null
  created=1
fi
if [ "$created" = 1 ]; then
  echo "up: created stack '$stack' (state: $PULUMI_BACKEND_URL; Pulumi.$stack.yaml is git-ignored)"
fi
# The password is set when the stack's config file names it (read without a second `pulumi`
# process); otherwise, unless the stack was just created (its config can then only come from
# Pulumi.yaml), `pulumi config get` decides (config from elsewhere).
has_password() {
  grep -q '^  pulumi-bdr:replicationPassword:' "Pulumi.$stack.yaml" 2>/dev/null && return 0
  if [ "$created" = 1 ] && ! grep -q 'replicationPassword' Pulumi.yaml; then return 1; fi
  pulumi config get replicationPassword >/dev/null 2>&1
}
if ! has_password; then
  # The value goes through stdin, never through a command line.
  head -c 32 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 32 | pulumi config set --secret replicationPassword
fi
exec pulumi up --yes --skip-preview "$@"
