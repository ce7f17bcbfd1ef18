# <lib/sh/ssh-run.sh>
# ---- pulumi-bdr: remote guard transport ----
set -uo pipefail
ssh_keys_private
ssh_bash "$1" "$2" "$3" "$4" "$5"
