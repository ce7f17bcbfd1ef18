#!/usr/bin/env bash
# Installs the Pulumi toolchain pulumi-bdr runs on, the same parts a user installs:
#   - the Pulumi CLI v3.248.0 and its Node.js and Go language hosts v3.248.0 (+ the dynamic-provider shim),
#   - the YAML language host v1.25.0 (built against the CLI's SDK, for YAML programs using provider/),
#   - the resource plugins command 1.2.1, postgresql 3.18.0 and docker 5.1.0.
#
#   bash scripts/install-pulumi.sh [--sources DIR]     # then: source scripts/pulumi-env.sh
#
# Each part is got the normal way first (an existing `pulumi` of the right version on PATH;
# `pulumi plugin install resource NAME VERSION`, which downloads), and where that fails it is built
# from upstream source snapshots in DIR (flag --sources, or PULUMI_BDR_PLUGIN_SOURCES; the files
# listed in ../shared/third_party/README.md) plus the Go module proxy. Built binaries are cached in
# $PULUMI_BDR_CACHE (default ~/.cache/pulumi-bdr), keyed by name and version, so a warm run takes
# seconds. A cold build takes 30-45 minutes on 2 cores (see README.md, "Pulumi engine").
#
# Env knobs: PULUMI_BDR_CACHE, PULUMI_BDR_PLUGIN_SOURCES, PULUMI_BDR_FORCE=1 (rebuild everything),
# PULUMI_BDR_NO_DOWNLOAD=1 (skip the download attempts), PULUMI_BDR_NO_YAML=1 (skip the YAML
# language host), PULUMI_HOME, GOPROXY/GOMODCACHE/GOCACHE.
set -euo pipefail

PULUMI_VERSION="v3.248.0"
COMMAND_VERSION="1.2.1"
POSTGRESQL_VERSION="3.18.0"
DOCKER_VERSION="5.1.0"

CACHE="${PULUMI_BDR_CACHE:-$HOME/.cache/pulumi-bdr}"
BIN="$CACHE/bin"
LOGS="$CACHE/logs"
BUILD="$CACHE/build"
# The CLI finds its home through the OS user database, not $HOME: name it, so both agree.
export PULUMI_HOME="${PULUMI_HOME:-$HOME/.pulumi}"
PLUGINS_DIR="$PULUMI_HOME/plugins"
FORCE="${PULUMI_BDR_FORCE:-0}"
SOURCES="${PULUMI_BDR_PLUGIN_SOURCES:-}"

while [ $# -gt 0 ]; do
	case "$1" in
	--sources)
		SOURCES="${2:?--sources needs a directory}"
		shift 2
		;;
	--sources=*)
		SOURCES="${1#--sources=}"
		shift
		;;
	*)
		echo "install-pulumi: unknown argument '$1' (allowed: --sources DIR)" >&2
		exit 2
		;;
	esac
done

export GOTOOLCHAIN=local
export GOFLAGS="-mod=mod -buildvcs=false"
export PULUMI_SKIP_UPDATE_CHECK=true
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
export GIT_TERMINAL_PROMPT=0
SDK_VERSION_VAR="github.com/pulumi/pulumi/sdk/v3/go/common/version.Version"
T_START=$(date +%s)

log() { printf '[install-pulumi %4ss] %s\n' "$(($(date +%s) - T_START))" "$*" >&2; }
die() {
	log "ERROR: $*"
	exit 1
}
need() { command -v "$1" >/dev/null 2>&1 || die "'$1' is required but not on PATH"; }

# run_logged NAME CMD...: runs CMD with its output in $LOGS/NAME.log. While it runs, prints every
# 30 s how long it has been going and the log's last line; on failure shows the log's tail.
run_logged() {
	local name=$1 t0 rc=0 ticker
	shift
	t0=$(date +%s)
	log "$name: started (log: $LOGS/$name.log)"
	: >"$LOGS/$name.log"
	(
		while sleep 30; do
			log "$name: running for $(($(date +%s) - t0)) s; last log line: $(tail -n 1 "$LOGS/$name.log" 2>/dev/null | cut -c1-120)"
		done
	) &
	ticker=$!
	"$@" >>"$LOGS/$name.log" 2>&1 || rc=$?
	kill "$ticker" 2>/dev/null || true
	wait "$ticker" 2>/dev/null || true
	if [ "$rc" -ne 0 ]; then
		tail -n 40 "$LOGS/$name.log" >&2 || true
		log "$name: FAILED (exit $rc) after $(($(date +%s) - t0)) s; full log: $LOGS/$name.log"
		return "$rc"
	fi
	log "$name: done in $(($(date +%s) - t0)) s"
}

# moddir MODULE@VERSION: downloads a module through the proxy and prints its module-cache directory.
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

# source_archive NAME: the path of an upstream snapshot in $SOURCES, or a clear error.
source_archive() {
	[ -n "$SOURCES" ] || die "cannot download $1 and no source directory was given: pass --sources DIR or set PULUMI_BDR_PLUGIN_SOURCES (e.g. ../shared/third_party)"
	[ -f "$SOURCES/$1.tar.gz" ] || die "$SOURCES/$1.tar.gz not found (needed to build $1)"
	printf '%s\n' "$SOURCES/$1.tar.gz"
}

# unpack NAME DEST: extracts the snapshot NAME into DEST (its single top directory stripped).
unpack() {
	local archive
	archive=$(source_archive "$1")
	rm -rf "$2"
	mkdir -p "$2"
	tar -xzf "$archive" -C "$2" --strip-components=1
}

# go_in DIR CMD...: runs CMD in DIR.
go_in() {
	local dir=$1
	shift
	(cd "$dir" && "$@")
}
# go_build DIR OUTPUT VAR=VALUE PACKAGE: a static, stripped build with one version variable set.
go_build() { go_in "$1" env CGO_ENABLED=0 go build -o "$2" -ldflags "-s -w -X $3" "$4"; }

need node
need tar
mkdir -p "$BIN" "$LOGS" "$PLUGINS_DIR"
if [ -n "$SOURCES" ]; then SOURCES=$(cd "$SOURCES" && pwd); fi

# One installer at a time per cache.
if command -v flock >/dev/null 2>&1; then
	exec 9>"$CACHE/.lock"
	flock 9
fi

# ------------------------------------------------------------------ pulumi CLI (+ sdk tree)
WORK="$BUILD/pulumi-$PULUMI_VERSION"
# Lays out $WORK/pkg and $WORK/sdk: writable copies of the pulumi modules at the CLI's version.
# The language hosts are nested modules whose go.mod replaces sdk and pkg with relative paths,
# so their sources are placed inside this tree and build against exactly these copies.
prepare_work() {
	[ -f "$WORK/.ready" ] && return 0
	need go
	local pkg sdk
	pkg=$(moddir "github.com/pulumi/pulumi/pkg/v3@$PULUMI_VERSION") || die "the Go module proxy does not serve pulumi/pkg/v3@$PULUMI_VERSION"
	sdk=$(moddir "github.com/pulumi/pulumi/sdk/v3@$PULUMI_VERSION") || die "the Go module proxy does not serve pulumi/sdk/v3@$PULUMI_VERSION"
	rm -rf "$WORK"
	mkdir -p "$WORK"
	cp -r "$pkg" "$WORK/pkg"
	cp -r "$sdk" "$WORK/sdk"
	chmod -R u+w "$WORK"
	touch "$WORK/.ready"
}

cli_version() { "$1" version 2>/dev/null | head -n 1 || true; }
SYS_PULUMI=$(command -v pulumi 2>/dev/null || true)
if [ "$FORCE" != 1 ] && [ -x "$BIN/pulumi" ] && [ "$(cli_version "$BIN/pulumi")" = "$PULUMI_VERSION" ]; then
	log "pulumi $PULUMI_VERSION: present"
elif [ "$FORCE" != 1 ] && [ -n "$SYS_PULUMI" ] && [ "$(cli_version "$SYS_PULUMI")" = "$PULUMI_VERSION" ]; then
	log "pulumi $PULUMI_VERSION: using $SYS_PULUMI"
	ln -sfn "$SYS_PULUMI" "$BIN/pulumi"
else
	prepare_work
	run_logged build-pulumi-cli go_build "$WORK/pkg" "$BIN/pulumi.tmp" "$SDK_VERSION_VAR=$PULUMI_VERSION" ./cmd/pulumi
	mv -f "$BIN/pulumi.tmp" "$BIN/pulumi"
	[ "$(cli_version "$BIN/pulumi")" = "$PULUMI_VERSION" ] || die "built pulumi reports '$(cli_version "$BIN/pulumi")'"
fi
PULUMI="$BIN/pulumi"

# The dynamic-provider shim ships in the sdk module's nodejs/dist.
if [ "$FORCE" = 1 ] || [ ! -x "$BIN/pulumi-resource-pulumi-nodejs" ]; then
	sys_shim="$(dirname "$(readlink -f "$PULUMI")")/pulumi-resource-pulumi-nodejs"
	if [ -x "$sys_shim" ] && [ "$sys_shim" != "$BIN/pulumi-resource-pulumi-nodejs" ]; then
		cp "$sys_shim" "$BIN/pulumi-resource-pulumi-nodejs"
	else
		prepare_work
		cp "$WORK/sdk/nodejs/dist/pulumi-resource-pulumi-nodejs" "$BIN/pulumi-resource-pulumi-nodejs"
	fi
	chmod 755 "$BIN/pulumi-resource-pulumi-nodejs"
fi

# ------------------------------------------------------------------ language hosts
# build_langhost LANG: pulumi-language-LANG v3.248.0 next to the CLI.
build_langhost() {
	local lang=$1 rel
	case "$lang" in
	nodejs) rel="sdk/nodejs/cmd/pulumi-language-nodejs" ;;
	go) rel="sdk/go/pulumi-language-go" ;;
	*) die "unknown language host $lang" ;;
	esac
	local want="$PULUMI_VERSION" have=""
	[ -x "$BIN/pulumi-language-$lang" ] && have=$("$BIN/pulumi-language-$lang" -version 2>/dev/null || true)
	if [ "$FORCE" != 1 ] && [ "$have" = "$want" ]; then
		log "language host $lang $want: present"
		return 0
	fi
	local sys
	sys="$(dirname "$(readlink -f "$PULUMI")")/pulumi-language-$lang"
	if [ "$FORCE" != 1 ] && [ -x "$sys" ] && [ "$sys" != "$BIN/pulumi-language-$lang" ] &&
		[ "$("$sys" -version 2>/dev/null || true)" = "$want" ]; then
		log "language host $lang $want: using $sys (shipped with the CLI)"
		ln -sfn "$sys" "$BIN/pulumi-language-$lang"
		return 0
	fi
	need go
	prepare_work
	local src="$BUILD/src-pulumi-language-$lang"
	unpack "pulumi-language-$lang-${PULUMI_VERSION#v}" "$src"
	rm -rf "${WORK:?}/$rel"
	mkdir -p "$(dirname "$WORK/$rel")"
	cp -r "$src/$rel" "$WORK/$rel"
	rm -rf "$src"
	run_logged "build-language-$lang" go_build "$WORK/$rel" "$BIN/pulumi-language-$lang.tmp" "$SDK_VERSION_VAR=$want" .
	mv -f "$BIN/pulumi-language-$lang.tmp" "$BIN/pulumi-language-$lang"
	have=$("$BIN/pulumi-language-$lang" -version 2>/dev/null || true)
	[ "$have" = "$want" ] || die "built pulumi-language-$lang reports '$have', expected $want"
}
build_langhost nodejs
# The Go language host, for Go programs that use the component provider (provider/).
build_langhost go

# ------------------------------------------------------------------ YAML language host
# pulumi-language-yaml (github.com/pulumi/pulumi-yaml, served by the module proxy) for YAML programs
# that use the BdrCluster component provider (provider/). v1.25.0 is built against Pulumi SDK
# 3.206, whose plugin host passes `-root` to language hosts, a flag the 3.248 Node.js host no longer
# has: so it is built against the CLI's SDK 3.248 with scripts/patches/pulumi-yaml-*.patch (API
# renames, and packages loaded through the engine's loader). A stamp records what was built.
YAML_VERSION="v1.25.0"
YAML_PATCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/patches/pulumi-yaml-${YAML_VERSION#v}-sdk-${PULUMI_VERSION#v}.patch"
build_yaml_langhost() {
	local stamp="$CACHE/stamps/language-yaml" want
	[ -f "$YAML_PATCH" ] || die "$YAML_PATCH not found"
	want="$YAML_VERSION sdk $PULUMI_VERSION patch $(sha256sum "$YAML_PATCH" | cut -c1-16)"
	if [ "$FORCE" != 1 ] && [ -x "$BIN/pulumi-language-yaml" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
		log "language host yaml $YAML_VERSION: present"
		return 0
	fi
	need go
	need patch
	local src dir="$BUILD/language-yaml"
	src=$(moddir "github.com/pulumi/pulumi-yaml@$YAML_VERSION") || die "the Go module proxy does not serve pulumi-yaml@$YAML_VERSION"
	rm -rf "$dir"
	mkdir -p "$dir"
	cp -r "$src" "$dir/pulumi-yaml"
	chmod -R u+w "$dir"
	(cd "$dir/pulumi-yaml" && patch -s -p1 <"$YAML_PATCH") || die "$(basename "$YAML_PATCH") does not apply"
	printf 'module example.com/pulumi-bdr-yamlhost\n\ngo 1.24\n\nreplace github.com/pulumi/pulumi-yaml => ./pulumi-yaml\n' >"$dir/go.mod"
	printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/pulumi/pulumi-yaml/cmd/pulumi-language-yaml"\n' >"$dir/tools.go"
	run_logged get-language-yaml go_in "$dir" go get "github.com/pulumi/pulumi-yaml@$YAML_VERSION" \
		"github.com/pulumi/pulumi/sdk/v3@$PULUMI_VERSION" "github.com/pulumi/pulumi/pkg/v3@$PULUMI_VERSION"
	run_logged build-language-yaml go_build "$dir" "$BIN/pulumi-language-yaml.tmp" \
		"github.com/pulumi/pulumi-yaml/pkg/version.Version=${YAML_VERSION#v}" github.com/pulumi/pulumi-yaml/cmd/pulumi-language-yaml
	mv -f "$BIN/pulumi-language-yaml.tmp" "$BIN/pulumi-language-yaml"
	mkdir -p "$(dirname "$stamp")"
	printf '%s\n' "$want" >"$stamp"
}
if [ "${PULUMI_BDR_NO_YAML:-0}" != 1 ]; then build_yaml_langhost; fi

# ------------------------------------------------------------------ resource plugins
# plugin_installed NAME VERSION: the binary the CLI will run for that plugin, if any.
plugin_path() { printf '%s\n' "$PLUGINS_DIR/resource-$1-v$2/pulumi-resource-$1"; }

build_command() { # DIR BINARY VERSION
	unpack "pulumi-command-$3" "$1"
	run_logged build-plugin-command go_build "$1/provider" "$2" \
		"github.com/pulumi/pulumi-command/provider/pkg/version.Version=$3" ./cmd/pulumi-resource-command
}

# bridged_layout DIR PROVIDER UPSTREAM: a Terraform-bridged provider with its upstream beside it
# as upstream/ (the provider's go.mod replaces the upstream module with ../upstream), patched.
bridged_layout() {
	unpack "$2" "$1"
	unpack "$3" "$1/upstream"
	local p
	for p in "$1"/patches/*.patch; do
		[ -e "$p" ] || continue
		(cd "$1/upstream" && git apply "$p") || die "patch $(basename "$p") does not apply to $3"
	done
}

build_postgresql() { # DIR BINARY VERSION
	need git
	bridged_layout "$1" "pulumi-postgresql-$3" "terraform-provider-postgresql-ff936b95"
	run_logged download-plugin-postgresql-modules go_in "$1/provider" go mod download
	run_logged generate-plugin-postgresql-schema go_in "$1/provider" env VERSION="$3" go generate cmd/pulumi-resource-postgresql/main.go
	run_logged build-plugin-postgresql go_build "$1/provider" "$2" \
		"github.com/pulumi/pulumi-postgresql/provider/v3/pkg/version.Version=$3" ./cmd/pulumi-resource-postgresql
}

build_docker() { # DIR BINARY VERSION
	need git
	bridged_layout "$1" "pulumi-docker-$3" "terraform-provider-docker-4.5.0"
	# pulumi-java is only used by code generation (none of it is compiled into the plugin) and
	# the module proxy refuses it: stand an empty module in for it.
	mkdir -p "$1/pulumi-java-unused"
	printf 'module github.com/pulumi/pulumi-java\n\ngo 1.21\n' >"$1/pulumi-java-unused/go.mod"
	(cd "$1/provider" && go mod edit -replace github.com/pulumi/pulumi-java=../pulumi-java-unused)
	# Not `go mod download`: two modules the plugin does not compile are refused by the proxy.
	run_logged generate-plugin-docker-schema go_in "$1/provider" env VERSION="$3" go generate cmd/pulumi-resource-docker/main.go
	run_logged build-plugin-docker go_build "$1/provider" "$2" \
		"github.com/pulumi/pulumi-docker/provider/v5/pkg/version.Version=$3" ./cmd/pulumi-resource-docker
}

# ensure_plugin NAME VERSION: installs resource plugin NAME VERSION: present, downloaded, or built.
ensure_plugin() {
	local name=$1 version=$2 dest cached
	dest=$(plugin_path "$name" "$version")
	cached="$CACHE/plugins/$name-$version/pulumi-resource-$name"
	if [ "$FORCE" != 1 ] && [ -x "$dest" ] && { [ ! -x "$cached" ] || cmp -s "$cached" "$dest"; }; then
		log "plugin $name $version: present ($dest)"
		return 0
	fi
	if [ "$FORCE" != 1 ] && [ ! -x "$cached" ] && [ "${PULUMI_BDR_NO_DOWNLOAD:-0}" != 1 ]; then
		log "plugin $name $version: trying pulumi plugin install (log: $LOGS/download-plugin-$name.log)"
		if timeout 120 "$PULUMI" plugin install resource "$name" "$version" >"$LOGS/download-plugin-$name.log" 2>&1 &&
			[ -x "$dest" ]; then
			log "plugin $name $version: downloaded"
			return 0
		fi
		log "plugin $name $version: download failed ($(grep -m1 -o 'error: .*' "$LOGS/download-plugin-$name.log" | cut -c1-160)); building it from source"
	fi
	if [ "$FORCE" = 1 ] || [ ! -x "$cached" ]; then
		need go
		local dir="$BUILD/plugin-$name-$version"
		mkdir -p "$(dirname "$cached")"
		"build_$name" "$dir" "$cached.tmp" "$version"
		mv -f "$cached.tmp" "$cached"
		rm -rf "$dir"
	fi
	run_logged "install-plugin-$name" "$PULUMI" plugin install resource "$name" "$version" --file "$cached" --reinstall
}

ensure_plugin command "$COMMAND_VERSION"
ensure_plugin postgresql "$POSTGRESQL_VERSION"
ensure_plugin docker "$DOCKER_VERSION"

rm -rf "$BUILD"

log "ready in $(($(date +%s) - T_START)) s: pulumi $PULUMI_VERSION, language hosts nodejs and go $PULUMI_VERSION, yaml $YAML_VERSION, plugins command $COMMAND_VERSION, postgresql $POSTGRESQL_VERSION, docker $DOCKER_VERSION"
log "put it on PATH with: source scripts/pulumi-env.sh"
