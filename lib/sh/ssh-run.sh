# shellcheck shell=bash
# pulumi-bdr runner-side SSH: how the runner (the machine that runs `pulumi up`) reaches a remote
# host with the system OpenSSH client. Used by forget-peers.sh (a peer's forget) and by the remote
# hosts' process guards (lib/hosts/guard.ts). Sourced first; functions only.
#
# The private key comes in an environment variable named PULUMI_BDR_SSH_KEY_<UNIT> (a secret of
# the resource that runs the script). ssh_keys_private turns those variables into plain shell
# variables at once, so no child process inherits a key; ssh_run writes the key to a private
# temporary file (mktemp: mode 0600) for the one ssh call, which removes it as soon as it has
# logged in (LocalCommand), and removes it again afterwards (a failed login). A key never
# appears on a command line or in a log.
#
# - ssh_keys_private: unexports every PULUMI_BDR_SSH_KEY_* variable (call it first);
# - ssh_run HOST PORT USER KEYVAR REMOTE-COMMAND: OpenSSH with the key from the shell variable
#   named KEYVAR, stdin passed through. Host keys are not checked, as the command provider's own
#   SSH connection does not check them either;
# - ssh_bash HOST PORT USER KEYVAR SUDO [ARG...]: `bash -s -- ARG...` on the host (SUDO=1:
#   `sudo -n` in front) through ssh_run, the script on stdin; its exit status is the script's.

ssh_keys_private() {
  local key_var
  while read -r key_var; do export -n "${key_var?}"; done < <(compgen -e | grep "^PULUMI_BDR_SSH_KEY_" || true)
}

ssh_run() {
  local host=$1 port=$2 user=$3 keyvar=$4 cmd=$5 kf rc=0
  [[ "$keyvar" =~ ^PULUMI_BDR_SSH_KEY_[A-Z0-9_]+$ ]] || { echo "pulumi-bdr: not an SSH key variable: '$keyvar'" >&2; return 1; }
  [ -n "${!keyvar:-}" ] || { echo "pulumi-bdr: no SSH key in $keyvar" >&2; return 1; }
  kf=$(mktemp) || return 1
  [[ "$kf" =~ ^[A-Za-z0-9/._-]+$ ]] || { rm -f "$kf"; echo "pulumi-bdr: unusable temporary file name '$kf'" >&2; return 1; }
  printf "%s\n" "${!keyvar}" > "$kf"
  ssh -i "$kf" -p "$port" -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
    -o ConnectTimeout=10 -o LogLevel=ERROR -o PermitLocalCommand=yes -o "LocalCommand=rm -f $kf" \
    "$user@$host" "$cmd" || rc=$?
  rm -f "$kf"
  return "$rc"
}

ssh_bash() {
  local host=$1 port=$2 user=$3 keyvar=$4 sudo=$5 cmd
  shift 5
  cmd="bash -s --"
  [ "$#" -eq 0 ] || cmd+=$(printf ' %q' "$@")
  [ "$sudo" != 1 ] || cmd="sudo -n $cmd"
  ssh_run "$host" "$port" "$user" "$keyvar" "$cmd"
}
