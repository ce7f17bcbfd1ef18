#!/usr/bin/env bash
# shellcheck disable=SC2016 # single-quoted `bash -c` bodies and the printed PATH line are meant literally
# Installs the Pulumi toolchain this repo needs, built from Go modules, into a
# cache outside the repo. Idempotent: a warm cache makes this a no-op that takes
# about a second.
#
#   bash scripts/install-pulumi.sh                # build/verify, print PATH line
#   eval "$(bash scripts/install-pulumi.sh)"      # ...and put it on PATH
#   source scripts/pulumi-env.sh                  # PATH + offline env vars
#
# What ends up in $CACHE/bin (CACHE=${PULUMI_BDR_CACHE:-$HOME/.cache/pulumi-bdr}):
#   pulumi                         CLI v3.248.0 (matches @pulumi/pulumi ~3.248.0)
#   pulumi-language-nodejs         nodejs language host (see LANGHOST notes below)
#   pulumi-resource-pulumi-nodejs  shim for dynamic providers (from the sdk module)
# and the resource plugin "command" 1.2.1 (matches npm @pulumi/command@1.2.1)
# registered in ${PULUMI_HOME:-~/.pulumi}/plugins.
#
# Only the Go module proxy and the npm registry are reachable here (no GitHub,
# no get.pulumi.com), and the proxy in use does not serve every module:
#   * github.com/pulumi/pulumi/{pkg,sdk}/v3@v3.248.0: served -> the CLI is built
#     from them (pkg's go.mod has `replace sdk/v3 => ../sdk`, so both are copied
#     side by side and built in place; `go install` would refuse the replace).
#   * github.com/pulumi/pulumi/sdk/nodejs/cmd/pulumi-language-nodejs/v3 (its own
#     module since ~v3.69): refused (403) at every version tried. Fallback: the
#     newest served sdk/v3 that still contains nodejs/cmd/pulumi-language-nodejs
#     is v3.68.0; that host speaks a protocol the v3.248 engine still accepts
#     (it falls back from GetRequiredPackages/Handshake) and runs the
#     @pulumi/pulumi 3.248 `cmd/run` entry point fine.
#   * github.com/pulumi/pulumi-command/provider: refused (v1.2.1 -> 404, no such
#     tag upstream; release-commit pseudo-version, v1.2.0, v1.1.0 -> 403). The
#     root module pulumi-command@v1.2.1 is served but excludes provider/ (nested
#     module). Fallback: a small stand-in plugin written in Node on top of
#     @pulumi/pulumi/provider, implementing command:local:Command and the
#     command:local:run invoke with pulumi-command's semantics (create/update/
#     delete commands, interpreter, dir, environment, stdin, triggers ->
#     replace, PULUMI_COMMAND_STDOUT/STDERR, assetPaths/archivePaths).
#     command:remote:* is NOT implemented by the stand-in.
# The script tries the real modules first, so it picks them up by itself the
# day the proxy serves them.
#
# Env knobs: PULUMI_BDR_CACHE (cache dir), PULUMI_BDR_FORCE=1 (rebuild all),
# PULUMI_HOME (plugin dir root), GOPROXY/GOMODCACHE/GOCACHE (as usual).
# Disk: a cold build adds ~1.4 GB to the Go module cache (GOMODCACHE) and ~1.5 GB
# to the Go build cache (GOCACHE); neither is needed once built. $CACHE is ~220 MB.
set -euo pipefail

PULUMI_VERSION="v3.248.0"
LANGHOST_FALLBACK_SDK_VERSION="v3.68.0"
COMMAND_VERSION="1.2.1"
COMMAND_RELEASE_PSEUDO="v0.0.0-20260303235922-7f3eb6f3b77c" # tag v1.2.1 = commit 7f3eb6f3b77c
NPM_PULUMI_FOR_SHIM="3.248.0"

CACHE="${PULUMI_BDR_CACHE:-$HOME/.cache/pulumi-bdr}"
BIN="$CACHE/bin"
STAMPS="$CACHE/stamps"
LOGS="$CACHE/logs"
PLUGINS_DIR="${PULUMI_HOME:-$HOME/.pulumi}/plugins"
FORCE="${PULUMI_BDR_FORCE:-0}"

export GOTOOLCHAIN=local
export GOFLAGS="-mod=mod -buildvcs=false"
export PULUMI_SKIP_UPDATE_CHECK=true
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
export GIT_TERMINAL_PROMPT=0

SDK_VERSION_VAR="github.com/pulumi/pulumi/sdk/v3/go/common/version.Version"
T_START=$(date +%s)

log() { printf '[install-pulumi] %s\n' "$*" >&2; }
die() {
	log "ERROR: $*"
	exit 1
}
need() { command -v "$1" >/dev/null 2>&1 || die "'$1' is required but not on PATH"; }

# run_logged NAME CMD...: runs CMD with output to $LOGS/NAME.log; on failure shows its tail.
run_logged() {
	local name=$1
	shift
	local t0 rc=0
	t0=$(date +%s)
	log "$name: running (log: $LOGS/$name.log)"
	"$@" >"$LOGS/$name.log" 2>&1 || rc=$?
	if [ "$rc" -ne 0 ]; then
		tail -n 40 "$LOGS/$name.log" >&2 || true
		log "$name: FAILED (exit $rc) after $(($(date +%s) - t0))s"
		return "$rc"
	fi
	log "$name: done in $(($(date +%s) - t0))s"
}

# moddir MODULE@VERSION: downloads a module through the proxy, prints its
# module-cache directory. Fails (without output) if the proxy does not serve it.
moddir() {
	local out dir
	out=$(cd "$CACHE" && go mod download -json "$1" 2>&1) || true
	dir=$(printf '%s\n' "$out" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' | head -n 1)
	if [ -z "$dir" ] || [ ! -d "$dir" ] || printf '%s' "$out" | grep -q '"Error"'; then
		printf '%s\n' "$out" | sed -n 's/^[[:space:]]*"Error": "\(.*\)",\{0,1\}$/\1/p' | head -n 1 >&2
		return 1
	fi
	printf '%s\n' "$dir"
}

stamp_set() { printf '%s\n' "$2" >"$STAMPS/$1"; }

need node
mkdir -p "$BIN" "$STAMPS" "$LOGS"

# One installer at a time per cache (parallel CI jobs on one machine).
if command -v flock >/dev/null 2>&1; then
	exec 9>"$CACHE/.lock"
	flock 9
fi

WORK="$CACHE/build/pulumi-$PULUMI_VERSION"

# Lays out <WORK>/pkg and <WORK>/sdk (writable copies of the v3.248.0 modules).
prepare_work() {
	[ -f "$WORK/.ready" ] && return 0
	need go
	local pkg sdk
	pkg=$(moddir "github.com/pulumi/pulumi/pkg/v3@$PULUMI_VERSION") || die "proxy does not serve pulumi/pkg/v3@$PULUMI_VERSION"
	sdk=$(moddir "github.com/pulumi/pulumi/sdk/v3@$PULUMI_VERSION") || die "proxy does not serve pulumi/sdk/v3@$PULUMI_VERSION"
	rm -rf "$WORK"
	mkdir -p "$WORK"
	cp -r "$pkg" "$WORK/pkg"
	cp -r "$sdk" "$WORK/sdk"
	chmod -R u+w "$WORK"
	grep -q '^var Version string' "$WORK/sdk/go/common/version/version.go" ||
		die "version variable not found in sdk/go/common/version/version.go; fix SDK_VERSION_VAR"
	touch "$WORK/.ready"
}

# ---------------------------------------------------------------- pulumi CLI
# Reuse a pulumi already on PATH if it is the right version and comes with a
# nodejs language host; otherwise build into $BIN.
cli_version() { "$1" version 2>/dev/null | head -n 1 || true; }
SYS_PULUMI=$(command -v pulumi 2>/dev/null || true)
if [ -n "$SYS_PULUMI" ] && [ "$SYS_PULUMI" != "$BIN/pulumi" ] && [ ! -e "$BIN/pulumi" ] &&
	[ "$(cli_version "$SYS_PULUMI")" = "$PULUMI_VERSION" ] &&
	[ -x "$(dirname "$SYS_PULUMI")/pulumi-language-nodejs" ]; then
	log "using existing $SYS_PULUMI ($PULUMI_VERSION)"
	for f in pulumi pulumi-language-nodejs pulumi-resource-pulumi-nodejs; do
		[ -e "$(dirname "$SYS_PULUMI")/$f" ] && ln -sfn "$(dirname "$SYS_PULUMI")/$f" "$BIN/$f"
	done
	stamp_set langhost "system"
fi

if [ "$FORCE" != 1 ] && [ -x "$BIN/pulumi" ] && [ "$(cli_version "$BIN/pulumi")" = "$PULUMI_VERSION" ]; then
	log "pulumi $PULUMI_VERSION: present"
else
	prepare_work
	run_logged build-pulumi-cli bash -c 'cd "$1/pkg" && go build -o "$2/pulumi.tmp" -ldflags "-s -w -X $3=$4" ./cmd/pulumi' \
		_ "$WORK" "$BIN" "$SDK_VERSION_VAR" "$PULUMI_VERSION"
	mv -f "$BIN/pulumi.tmp" "$BIN/pulumi"
	[ "$(cli_version "$BIN/pulumi")" = "$PULUMI_VERSION" ] || die "built pulumi reports '$(cli_version "$BIN/pulumi")'"
fi

# Dynamic-provider shim (a shell script in the sdk module's nodejs/dist).
if [ ! -x "$BIN/pulumi-resource-pulumi-nodejs" ] || [ "$FORCE" = 1 ]; then
	prepare_work
	cp "$WORK/sdk/nodejs/dist/pulumi-resource-pulumi-nodejs" "$BIN/pulumi-resource-pulumi-nodejs"
	chmod +x "$BIN/pulumi-resource-pulumi-nodejs"
fi
# pulumi-analyzer-policy is not in sdk v3.248.0's nodejs/dist any more and is
# only needed for policy packs, which this repo does not use.

# ------------------------------------------------------ nodejs language host
LANGHOST_MOD="github.com/pulumi/pulumi/sdk/nodejs/cmd/pulumi-language-nodejs/v3"
if [ -x "$BIN/pulumi-language-nodejs" ] && [ "$FORCE" != 1 ] && [ -f "$STAMPS/langhost" ]; then
	log "pulumi-language-nodejs: present ($(cat "$STAMPS/langhost"))"
else
	need go
	prepare_work
	built=""
	# Recipe 1: the real module at the CLI's version, in place under sdk/ so its
	# replace directives (../../../../pkg, ../../..) resolve to our copies.
	if lh=$(moddir "$LANGHOST_MOD@$PULUMI_VERSION" 2>"$LOGS/langhost-download.log"); then
		rm -rf "$WORK/sdk/nodejs/cmd/pulumi-language-nodejs"
		cp -r "$lh" "$WORK/sdk/nodejs/cmd/pulumi-language-nodejs"
		chmod -R u+w "$WORK/sdk/nodejs/cmd/pulumi-language-nodejs"
		if run_logged build-langhost bash -c 'cd "$1/sdk/nodejs/cmd/pulumi-language-nodejs" && go build -o "$2/pulumi-language-nodejs.tmp" -ldflags "-s -w -X $3=$4" .' \
			_ "$WORK" "$BIN" "$SDK_VERSION_VAR" "$PULUMI_VERSION"; then
			built="$LANGHOST_MOD@$PULUMI_VERSION"
		fi
	else
		log "language host module not served ($(cat "$LOGS/langhost-download.log")); using sdk/v3@$LANGHOST_FALLBACK_SDK_VERSION's host"
	fi
	# Recipe 2: newest served sdk/v3 that still embeds the host (built in its own module context).
	if [ -z "$built" ]; then
		old=$(moddir "github.com/pulumi/pulumi/sdk/v3@$LANGHOST_FALLBACK_SDK_VERSION") ||
			die "proxy does not serve pulumi/sdk/v3@$LANGHOST_FALLBACK_SDK_VERSION either"
		OLDW="$CACHE/build/sdk-$LANGHOST_FALLBACK_SDK_VERSION"
		rm -rf "$OLDW"
		mkdir -p "$(dirname "$OLDW")"
		cp -r "$old" "$OLDW"
		chmod -R u+w "$OLDW"
		run_logged build-langhost bash -c 'cd "$1" && go build -o "$2/pulumi-language-nodejs.tmp" -ldflags "-s -w -X $3=$4" ./nodejs/cmd/pulumi-language-nodejs' \
			_ "$OLDW" "$BIN" "$SDK_VERSION_VAR" "$LANGHOST_FALLBACK_SDK_VERSION"
		rm -rf "$OLDW"
		built="github.com/pulumi/pulumi/sdk/v3@$LANGHOST_FALLBACK_SDK_VERSION/nodejs/cmd/pulumi-language-nodejs"
	fi
	mv -f "$BIN/pulumi-language-nodejs.tmp" "$BIN/pulumi-language-nodejs"
	stamp_set langhost "$built"
fi

# ------------------------------------------------------- command provider
PLUGIN_DEST="$PLUGINS_DIR/resource-command-v$COMMAND_VERSION/pulumi-resource-command"
SHIM_DIR="$CACHE/command-provider-$COMMAND_VERSION"

write_shim_js() {
	cat "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/command-provider/index.js"
}

# Recipe 1 for the command provider: the real Go module (not served today).
build_command_go() {
	local src v
	for v in "v$COMMAND_VERSION" "$COMMAND_RELEASE_PSEUDO"; do
		if src=$(moddir "github.com/pulumi/pulumi-command/provider@$v" 2>>"$LOGS/command-download.log"); then
			local w="$CACHE/build/pulumi-command-provider"
			rm -rf "$w"
			mkdir -p "$(dirname "$w")"
			cp -r "$src" "$w"
			chmod -R u+w "$w"
			if run_logged build-command-provider bash -c 'cd "$1" && go build -o "$2" -ldflags "-s -w -X github.com/pulumi/pulumi-command/provider/pkg/version.Version=$3" ./cmd/pulumi-resource-command' \
				_ "$w" "$CACHE/pulumi-resource-command-go" "$COMMAND_VERSION"; then
				rm -rf "$w"
				return 0
			fi
			rm -rf "$w"
		fi
	done
	return 1
}

# Recipe 2: the Node stand-in, with its own @pulumi/pulumi from the npm registry.
build_command_shim() {
	need npm
	mkdir -p "$SHIM_DIR"
	write_shim_js | sed "s/@COMMAND_VERSION@/$COMMAND_VERSION/" >"$SHIM_DIR/index.js.new"
	mv -f "$SHIM_DIR/index.js.new" "$SHIM_DIR/index.js"
	if [ "$(node -p "try{require('$SHIM_DIR/node_modules/@pulumi/pulumi/package.json').version}catch(e){''}")" != "$NPM_PULUMI_FOR_SHIM" ]; then
		printf '{"name":"pulumi-command-standin","version":"%s","private":true}\n' "$COMMAND_VERSION" >"$SHIM_DIR/package.json"
		run_logged npm-install-command-shim bash -c 'cd "$1" && npm install --no-audit --no-fund --omit=dev --no-package-lock --loglevel=error "@pulumi/pulumi@$2"' \
			_ "$SHIM_DIR" "$NPM_PULUMI_FOR_SHIM"
	fi
	printf '#!/bin/sh\n# stand-in pulumi-resource-command %s (see scripts/install-pulumi.sh)\nexec node "%s/index.js" "$@"\n' \
		"$COMMAND_VERSION" "$SHIM_DIR" >"$SHIM_DIR/pulumi-resource-command"
	chmod +x "$SHIM_DIR/pulumi-resource-command"
}

command_expected_recipe() { cat "$STAMPS/command" 2>/dev/null || true; }
command_source_file() {
	case "$(command_expected_recipe)" in
	go:*) echo "$CACHE/pulumi-resource-command-go" ;;
	shim:*) echo "$SHIM_DIR/pulumi-resource-command" ;;
	esac
}

shim_sum() { write_shim_js | sha256sum | cut -c1-16; }
cmd_ok=0
if [ "$FORCE" != 1 ]; then
	src=$(command_source_file)
	case "$(command_expected_recipe)" in
	go:*) [ -n "$src" ] && [ -x "$src" ] && cmd_ok=1 ;;
	shim:*) [ "$(command_expected_recipe)" = "shim:$(shim_sum)" ] && [ -x "$src" ] &&
		[ -f "$SHIM_DIR/node_modules/@pulumi/pulumi/package.json" ] && cmd_ok=1 ;;
	esac
fi
if [ "$cmd_ok" = 1 ]; then
	log "command provider $COMMAND_VERSION: present ($(command_expected_recipe))"
else
	: >"$LOGS/command-download.log"
	if command -v go >/dev/null 2>&1 && build_command_go; then
		stamp_set command "go:github.com/pulumi/pulumi-command/provider"
	else
		log "pulumi-command provider module not served ($(tail -n 1 "$LOGS/command-download.log")); installing the Node stand-in"
		build_command_shim
		stamp_set command "shim:$(shim_sum)"
	fi
fi

# Register it as resource plugin command v1.2.1 (re-register if the copy differs).
src=$(command_source_file)
if [ ! -x "$PLUGIN_DEST" ] || ! cmp -s "$src" "$PLUGIN_DEST"; then
	run_logged plugin-install-command "$BIN/pulumi" plugin install resource command "$COMMAND_VERSION" --file "$src" --reinstall
fi

rm -rf "$CACHE/build"

# Cross-check against the repo's pins, if node_modules is there (warning only).
REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -f "$REPO_DIR/node_modules/@pulumi/pulumi/package.json" ]; then
	npm_pulumi=$(node -p "require('$REPO_DIR/node_modules/@pulumi/pulumi/package.json').version")
	[ "v$npm_pulumi" = "$PULUMI_VERSION" ] || log "WARNING: node_modules has @pulumi/pulumi $npm_pulumi, CLI is $PULUMI_VERSION"
fi
if [ -f "$REPO_DIR/node_modules/@pulumi/command/package.json" ]; then
	npm_cmd=$(node -p "require('$REPO_DIR/node_modules/@pulumi/command/package.json').pulumi.version")
	[ "$npm_cmd" = "$COMMAND_VERSION" ] || log "WARNING: @pulumi/command wants plugin $npm_cmd, installed $COMMAND_VERSION"
fi

log "ready in $(($(date +%s) - T_START))s: pulumi $PULUMI_VERSION, language host $(cat "$STAMPS/langhost"), command $COMMAND_VERSION ($(command_expected_recipe | cut -d: -f1))"
log "add to your shell (or: source scripts/pulumi-env.sh):"
printf 'export PATH="%s:$PATH"\n' "$BIN"
