FP_LEAVING=b
# <lib/sh/ssh-run.sh>
# <lib/sh/forget-peers.sh>
forget_on_peers
