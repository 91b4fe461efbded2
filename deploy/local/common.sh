# shellcheck shell=bash
# Helpers shared by the deploy/local scripts: sourced, never run on its own.

SCRIPT_NAME=${BASH_SOURCE[-1]##*/}
# shellcheck disable=SC2034 # used by the sourcing scripts
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)

log() { printf '%s\n' "$SCRIPT_NAME: $*" >&2; }
die() { log "error: $*"; exit 1; }

usage() { # usage EXIT_CODE: print the calling script's header comment
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[-1]}" >&2
    exit "${1:-2}"
}

# alive PID: the process still exists and has not finished exiting. A zombie
# answers kill -0 but is dead (one lingers when nobody reaps the broker). The
# leader thread of a JVM also shows Z while its other threads are still
# tearing down and holding the sockets, so it only counts as dead once it is
# the last task left.
alive() {
    local stat tasks
    [[ -n ${1:-} ]] || return 1
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat%% *} != Z ]] && return 0
    tasks=$(find "/proc/$1/task" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
    ((tasks > 1))
}

port_listening() { # port_listening PORT: any TCP listener on that port
    local port_hex
    port_hex=$(printf '%04X' "$1")
    awk -v p="$port_hex" '$4 == "0A" { split($2, a, ":"); if (a[2] == p) found = 1 } END { exit !found }' \
        /proc/net/tcp /proc/net/tcp6 2>/dev/null
}
