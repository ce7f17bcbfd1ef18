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
