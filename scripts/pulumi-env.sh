# shellcheck shell=bash
# Source this file (do not run it):  . scripts/pulumi-env.sh
# Puts the Pulumi toolchain built by scripts/install-pulumi.sh on PATH and sets
# the environment for fully offline use (local file backend, no update checks,
# no plugin downloads). Values already set in the environment are kept.

_pbdr_bin="${PULUMI_BDR_CACHE:-$HOME/.cache/pulumi-bdr}/bin"
case ":$PATH:" in
*":$_pbdr_bin:"*) ;;
*) PATH="$_pbdr_bin:$PATH" ;;
esac
export PATH

# State lives in a local directory instead of Pulumi Cloud.
export PULUMI_BACKEND_URL="${PULUMI_BACKEND_URL:-file://$HOME/.pulumi-bdr-state}"
case "$PULUMI_BACKEND_URL" in
file://~*) mkdir -p "$HOME${PULUMI_BACKEND_URL#file://~}" ;;
file://*) mkdir -p "${PULUMI_BACKEND_URL#file://}" ;;
esac

# The file backend encrypts secrets with a passphrase. There is no built-in default: a passphrase
# or passphrase file already in the environment is kept (an empty passphrase too); otherwise the
# file that scripts/up.sh generated for the stack ($STACK, default dev) is named, if it exists:
# ${XDG_CONFIG_HOME:-~/.config}/pulumi-bdr/<stack>.passphrase (mode 0600, outside the repository).
if [ -z "${PULUMI_CONFIG_PASSPHRASE+x}" ] && [ -z "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]; then
	_pbdr_pass="${XDG_CONFIG_HOME:-$HOME/.config}/pulumi-bdr/${STACK:-dev}.passphrase"
	if [ -f "$_pbdr_pass" ]; then
		export PULUMI_CONFIG_PASSPHRASE_FILE="$_pbdr_pass"
	fi
	unset _pbdr_pass
fi

export PULUMI_SKIP_UPDATE_CHECK="${PULUMI_SKIP_UPDATE_CHECK:-true}"
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION="${PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION:-true}"

if [ ! -x "$_pbdr_bin/pulumi" ]; then
	echo "pulumi-env.sh: $_pbdr_bin/pulumi not found; run scripts/install-pulumi.sh first" >&2
fi
unset _pbdr_bin
