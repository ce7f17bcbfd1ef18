# shellcheck shell=bash
# pulumi-bdr forget on peers: runs on the runner (the machine that runs `pulumi up`) as the delete
# of a node's `<join>-forget` step: every surviving peer runs the `forget` operation of a bundle,
# each through its own transport, all peers at once; a peer that fails is reported and the
# others still run. The same text whatever the cluster size: the peers come as data lines.
#
# Value: FP_LEAVING, the leaving node's name (messages).
# stdin: one data line per peer, fields separated by tabs, then the line `--end-of-peers--`, then
# the bundle (lib/hosts/bundle.ts) whose `forget` operation runs on each peer:
#   local  NAME ARGS...                         bash -s -- forget ARGS... on the runner
#   remote NAME HOST PORT USER KEYVAR SUDO ARGS...  over OpenSSH, the key from the environment
#                                               variable KEYVAR; SUDO=1: sudo -n in front
#   docker NAME DAEMON CONTAINER ARGS...        docker -H DAEMON exec -i CONTAINER, skipped when
#                                               the container is not running
# ARGS are the peer's forget arguments (lib/hosts/bundle.ts forgetArgs).
# Entry point: forget_on_peers (always exits 0). Needs ssh-run.sh (sourced before it).
set -uo pipefail

# run_on_peer OP BUNDLE FIELDS...: runs the bundle's operation OP on one host, reached through
# the transport of its data line's fields (also guard-probe.sh's `probe`).
run_on_peer() {
  local op=$1 bundle=$2 kind=$3 h c
  shift 4
  case "$kind" in
    local)
      printf '%s\n' "$bundle" | bash -s -- "$op" "$@"
      ;;
    remote)
      local host=$1 port=$2 user=$3 keyvar=$4 sudo=$5
      shift 5
      printf '%s\n' "$bundle" | ssh_bash "$host" "$port" "$user" "$keyvar" "$sudo" "$op" "$@"
      ;;
    docker)
      h=$1 c=$2
      shift 2
      if [ "$(docker -H "$h" inspect --type container -f '{{.State.Running}}' "$c" 2>/dev/null)" = true ]; then
        printf '%s\n' "$bundle" | docker -H "$h" exec -i "$c" bash -s -- "$op" "$@"
      elif docker -H "$h" inspect --type container "$c" >/dev/null 2>&1; then
        echo "pulumi-bdr: container $c is not running: nothing to do in it" >&2
      fi
      ;;
    *)
      echo "pulumi-bdr: unknown peer transport '$kind'" >&2
      return 1
      ;;
  esac
}
# forget_on_peer BUNDLE FIELDS...: runs the bundle's forget on one peer (fields of its data line).
forget_on_peer() { run_on_peer forget "$@"; }

forget_on_peers() {
  local line bundle fields
  local peers=()
  # The SSH keys stay shell variables of this script: no child process inherits them.
  ssh_keys_private
  while IFS= read -r line && [ "$line" != "--end-of-peers--" ]; do
    [ -z "$line" ] || peers+=("$line")
  done
  bundle=$(cat)
  # Every peer at once (each through its own transport); a failure only warns.
  local pids=() names=() i
  for line in "${peers[@]}"; do
    IFS=$'\t' read -r -a fields <<<"$line"
    forget_on_peer "$bundle" "${fields[@]}" </dev/null &
    pids+=("$!")
    names+=("${fields[1]:-?}")
  done
  for i in "${!pids[@]}"; do
    if ! wait "${pids[$i]}"; then
      echo "pulumi-bdr: WARNING: peer ${names[$i]} could not forget node $FP_LEAVING" >&2
    fi
  done
  exit 0
}
