# shellcheck shell=bash
# pulumi-bdr process guard, runner side: asks one host for its guard token (common.sh
# guard_probe). The program runs this through the command provider's `local.run` on every preview
# and up (lib/hosts/probe.ts), so a process that died behind Pulumi's back shows up as a change of
# the host's guard without a refresh.
#
# stdin: one data line in forget-peers.sh's format without ARGS (`local NAME`, `remote NAME HOST
# PORT USER KEYVAR SUDO` or `docker NAME DAEMON CONTAINER`), the line `--end-of-peers--`, then
# the bundle (lib/hosts/bundle.ts) whose `probe` operation runs on the host.
# stdout: the token, or, when the host could not be asked (no SSH connection, no running
# container, no answer), a fresh word `u<nanoseconds>` each time: it never equals a stored token,
# so the guard shows a change for as long as the host cannot be asked, and the ensure that runs
# once it can (a container recreated by `up --refresh`) stores that word. The host's messages are
# dropped. Always exits 0.
# Needs ssh-run.sh and forget-peers.sh (sourced before it).
set -uo pipefail

guard_probe_on_host() {
  local line end bundle out token fields
  # The SSH key stays a shell variable of this script: no child process inherits it.
  ssh_keys_private
  IFS= read -r line || true
  IFS= read -r end || true
  if [ "$end" != "--end-of-peers--" ]; then
    echo "pulumi-bdr: guard probe: malformed input" >&2
    exit 1
  fi
  bundle=$(cat)
  IFS=$'\t' read -r -a fields <<<"$line"
  out=$(run_on_peer probe "$bundle" "${fields[@]}" 2>/dev/null </dev/null) || true
  token=$(printf '%s\n' "$out" | sed -n 's/^pulumi-bdr-guard-token=\([A-Za-z0-9]\{1,32\}\)$/\1/p' | tail -n 1)
  printf '%s\n' "${token:-u$(date +%s%N)}"
  exit 0
}
