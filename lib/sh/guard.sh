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
