#!/usr/bin/env bash
# Headless Chromium for screenshots of rendered pages (the executive readout
# preview), from Debian's chromium package.
#
# Usage: deploy/local/chromium.sh {ensure|path}
#
#   ensure  install Debian's chromium package if no browser is found, then
#           print the binary's path
#   path    print the binary's path; fail if none is installed
#
# stdout carries only the path, so callers can do
#   CHROMIUM=$(deploy/local/chromium.sh ensure)
# Everything else goes to stderr.
#
# Environment (optional):
#   OKR_CHROMIUM  a browser binary to use instead of searching the PATH
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
# shellcheck source=deploy/local/common.sh
source "$SCRIPT_DIR/common.sh"

# find_binary: the first of $OKR_CHROMIUM, chromium, chromium-browser that
# runs; printed on stdout.
find_binary() {
    local candidate found
    if [[ -n ${OKR_CHROMIUM:-} ]]; then
        [[ -x $OKR_CHROMIUM ]] || die "OKR_CHROMIUM=$OKR_CHROMIUM is not an executable file"
        printf '%s\n' "$OKR_CHROMIUM"
        return 0
    fi
    for candidate in chromium chromium-browser; do
        if found=$(command -v "$candidate" 2>/dev/null); then
            printf '%s\n' "$found"
            return 0
        fi
    done
    return 1
}

install_browser() {
    local sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null 2>&1 ||
            die "Chromium is not installed and installing it needs root; run as root or: apt-get install chromium"
        sudo=(sudo)
    fi
    command -v apt-get >/dev/null 2>&1 ||
        die "Chromium is not installed and this is not a Debian-like system; install chromium or set OKR_CHROMIUM"
    log "no chromium or chromium-browser on the PATH; installing Debian's chromium package"
    "${sudo[@]}" apt-get update >&2 || die "apt-get update failed"
    # Recommends pull in fonts (and a desktop's worth of extras); fonts-liberation
    # is enough for text to render with real glyphs in headless screenshots.
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends chromium fonts-liberation >&2 ||
        die "apt-get install chromium failed"
}

cmd_ensure() {
    local binary
    if ! binary=$(find_binary); then
        install_browser
        binary=$(find_binary) || die "chromium installed but neither chromium nor chromium-browser is on the PATH"
    fi
    printf '%s\n' "$binary"
}

cmd_path() {
    find_binary || die "no chromium or chromium-browser found; run: bash deploy/local/chromium.sh ensure"
}

main() {
    (($# == 1)) || usage
    case $1 in
        ensure) cmd_ensure ;;
        path) cmd_path ;;
        -h | --help | help) usage 0 ;;
        *) usage ;;
    esac
}

main "$@"
