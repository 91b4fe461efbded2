#!/usr/bin/env bash
# Throwaway local PostgreSQL cluster for okrstream development and tests,
# run straight from Debian's server binaries (no Docker, no system service).
#
# Usage: deploy/local/postgres.sh {start|stop|status|dsn}
#
# stdout carries only the DSN (start/status/dsn), so callers can do
#   DSN=$(deploy/local/postgres.sh start)
# Everything else goes to stderr.
#
# Environment (all optional):
#   OKR_POSTGRES_PORT           TCP port on 127.0.0.1 (default 15432)
#   OKR_POSTGRES_START_TIMEOUT  seconds to wait for the server (default 60)
#   OKR_STATE_DIR               per-checkout state (default <repo>/.local)
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
# shellcheck source=deploy/local/common.sh
source "$SCRIPT_DIR/common.sh"

PORT=${OKR_POSTGRES_PORT:-15432}
START_TIMEOUT=${OKR_POSTGRES_START_TIMEOUT:-60}
STATE_ROOT=${OKR_STATE_DIR:-$REPO_ROOT/.local}
DB_NAME=okrstream
DSN=postgresql://postgres@127.0.0.1:$PORT/$DB_NAME


validate_settings() {
    [[ $PORT =~ ^[0-9]+$ ]] || die "OKR_POSTGRES_PORT must be a number, got '$PORT'"
    [[ $START_TIMEOUT =~ ^[0-9]+$ ]] || die "OKR_POSTGRES_START_TIMEOUT must be a number"
}

resolve_dirs() {
    mkdir -p "$STATE_ROOT"
    # Absolute and symlink-free: the data dir path is compared with what the
    # running server reports and with postmaster command lines.
    STATE_ROOT=$(cd "$STATE_ROOT" && pwd -P)
    PGDIR=$STATE_ROOT/postgres-$PORT
    DATA=$PGDIR/data
    LOG_FILE=$PGDIR/postgres.log
}

# --------------------------------------------------------------- binaries --

BINDIR=

# Highest PostgreSQL major installed the Debian way (/usr/lib/postgresql/N/bin).
find_bindir() {
    local dir best=
    while IFS= read -r dir; do
        [[ -x $dir/initdb && -x $dir/pg_ctl && -x $dir/postgres && -x $dir/psql && -x $dir/pg_isready ]] &&
            best=$dir
    done < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V)
    BINDIR=$best
    [[ -n $BINDIR ]]
}

install_server() {
    local sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null 2>&1 ||
            die "PostgreSQL is not installed and installing it needs root; run as root or: apt-get install postgresql"
        sudo=(sudo)
    fi
    log "no PostgreSQL server under /usr/lib/postgresql; installing Debian's postgresql package"
    # Note: Debian's package also creates (and, where it can, starts) its own
    # default cluster on port 5432. That one is not used here.
    "${sudo[@]}" apt-get update >&2 || die "apt-get update failed"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends postgresql >&2 ||
        die "apt-get install postgresql failed"
}

ensure_server() {
    find_bindir && return 0
    install_server
    find_bindir || die "postgresql installed but no server found under /usr/lib/postgresql/*/bin"
}

# ------------------------------------------------------------------- user --

# PostgreSQL refuses to run as root, so as root everything server-side runs
# as the `postgres` system user (Debian's package creates it). Any other user
# simply runs the server as itself.
setup_user() {
    if ((EUID == 0)); then
        PG_USER=postgres
        if ! id -u "$PG_USER" >/dev/null 2>&1; then
            log "creating system user $PG_USER"
            useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/bash "$PG_USER"
        fi
    else
        PG_USER=$(id -un)
    fi
}

# as_pg CMD...: run a server-side command as PG_USER. The cd keeps it out of
# a cwd it may not be allowed to enter (e.g. /root); 9>&- keeps our lock fd
# out of the server, which would otherwise hold the lock for its whole life.
as_pg() {
    if ((EUID == 0)); then
        (cd "$PGDIR" && exec runuser -u "$PG_USER" -- "$@") 9>&-
    else
        (cd "$PGDIR" && exec "$@") 9>&-
    fi
}

# The postgres user must be able to traverse every directory down to the
# state dir (e.g. a clone under /root is 0700). Add only the search bit, only
# where it is missing, walking from / downwards.
ensure_traversable() {
    ((EUID == 0)) || return 0
    local path=$1 dir=''
    local parts=()
    IFS=/ read -r -a parts <<<"${path#/}"
    local part
    for part in "${parts[@]}"; do
        dir=$dir/$part
        if ! runuser -u "$PG_USER" -- test -x "$dir" 2>/dev/null; then
            log "granting others search (x) permission on $dir so $PG_USER can reach its data"
            chmod o+x "$dir"
        fi
    done
}

# ---------------------------------------------------------------- helpers --


# is_our_postmaster PID: `postgres -D <our data dir>`; guards against a pid
# that was reused by something else after a crash or reboot.
is_our_postmaster() {
    local args=()
    mapfile -d '' -t args 2>/dev/null <"/proc/$1/cmdline" || return 1
    ((${#args[@]} >= 3)) || return 1
    [[ ${args[0]##*/} == postgres || ${args[0]##*/} == postmaster ]] || return 1
    [[ " ${args[*]} " == *" -D $DATA "* ]]
}

postmaster_pid() { # pid from postmaster.pid, if the file exists
    [[ -f $DATA/postmaster.pid ]] || return 1
    head -n1 "$DATA/postmaster.pid" 2>/dev/null
}


ready() {
    [[ -n $BINDIR ]] || return 1
    # -U/-d: without them the probe logs 'role "root" does not exist'.
    "$BINDIR/pg_isready" -q -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -t 3
}

psql_admin() { # psql_admin SQL: run SQL in the postgres database, print rows
    # -X: ignore ~/.psqlrc; -w: never prompt for a password (a foreign server
    # that wants one must fail, not hang).
    "$BINDIR/psql" -X -w -A -t -q -v ON_ERROR_STOP=1 \
        -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -c "$1"
}

# The server answering on the port is the one from THIS state dir.
ours_answering() {
    local dir
    dir=$(psql_admin 'SHOW data_directory' 2>/dev/null) || return 1
    [[ $dir == "$DATA" ]]
}

ensure_database() {
    local exists
    exists=$(psql_admin "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")
    if [[ $exists != 1 ]]; then
        log "creating database $DB_NAME"
        psql_admin "CREATE DATABASE $DB_NAME" >&2
    fi
}

lock_state() {
    exec 9>"$PGDIR/lock"
    if ! flock -n 9; then
        log "waiting for another postgres.sh run on $PGDIR"
        flock -w 600 9 || die "timed out waiting for $PGDIR/lock"
    fi
}

prepare_dirs() {
    mkdir -p "$PGDIR"
    if ((EUID == 0)); then
        ensure_traversable "$STATE_ROOT"
        chown "$PG_USER:" "$PGDIR"
    fi
    chmod 0755 "$PGDIR"
}

# initdb once, into a temp dir that is renamed when complete: a run killed
# mid-initdb leaves only a *.tmp dir, which the next run throws away.
ensure_initdb() {
    [[ -f $DATA/PG_VERSION ]] && return 0
    if [[ -e $DATA ]]; then
        log "$DATA exists but is not a database cluster; recreating it"
        rm -rf "$DATA"
    fi
    rm -rf "$DATA.tmp"
    log "initialising a new cluster in $DATA"
    local locale=()
    # C.UTF-8 sorts by code point like C but still knows what a letter is;
    # fall back to plain C where the locale does not exist.
    if locale -a 2>/dev/null | grep -qiE '^c\.utf-?8$'; then
        locale=(--locale=C.UTF-8)
    else
        locale=(--no-locale)
    fi
    # trust auth: the server only listens on 127.0.0.1 (and a socket inside
    # the data dir) and holds nothing but test data. --no-sync: throwaway.
    as_pg "$BINDIR/initdb" -D "$DATA.tmp" -U postgres -E UTF8 "${locale[@]}" \
        -A trust --auth-local=trust --auth-host=trust --no-sync >"$PGDIR/initdb.log" 2>&1 || {
        tail -n 20 "$PGDIR/initdb.log" >&2
        die "initdb failed (full output in $PGDIR/initdb.log)"
    }
    printf "\n# Settings for the local okrstream cluster (written by deploy/local/postgres.sh).\ninclude_if_exists = 'okrstream.conf'\n" |
        as_pg tee -a "$DATA.tmp/postgresql.conf" >/dev/null
    mv "$DATA.tmp" "$DATA"
}

write_config() {
    local sockdir=$DATA
    # A Unix socket path is limited to 107 bytes; in a deeply nested checkout
    # go TCP-only rather than put the socket somewhere global.
    if ((${#sockdir} + ${#PORT} + 10 > 107)); then
        log "data dir path too long for a Unix socket; listening on TCP only"
        sockdir=
    fi
    as_pg tee "$DATA/okrstream.conf" >/dev/null <<EOF
# Regenerated by deploy/local/postgres.sh on every start; edits are lost.
listen_addresses = '127.0.0.1'
port = $PORT
# Keep the socket inside the data dir instead of /var/run/postgresql, which
# may not exist or belong to the system cluster.
unix_socket_directories = '$sockdir'
max_connections = 200
# Throwaway test cluster: durability is worthless here and these make writes
# several times faster. NEVER use these settings for data you want to keep:
# a crash can corrupt the cluster (recovery is to delete the data dir).
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
}

# Lock files left by a killed server. PostgreSQL clears them itself when
# their pid is gone, but a pid can also be reused by some other program
# (after a reboot), or linger as a zombie where nothing reaps orphans (some
# container inits don't); kill -0 then says "alive" and the new server
# refuses to start. So: keep them only while their pid is really our
# running postmaster.
clear_stale_lockfiles() {
    local file pid
    for file in "$DATA/postmaster.pid" "$DATA/.s.PGSQL.$PORT.lock"; do
        [[ -f $file ]] || continue
        pid=$(head -n1 "$file" 2>/dev/null) || pid=
        if [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" && is_our_postmaster "$pid"; then
            continue
        fi
        log "removing stale ${file##*/} (pid ${pid:-?} is not a running server of this cluster)"
        rm -f "$file"
    done
}

# After a postmaster is SIGKILLed its child processes notice and exit on
# their own, but until they have, they keep the old shared memory attached
# and a new postmaster refuses to start. Wait (bounded) for them to go. They
# are recognised by their working directory: every server process of a
# cluster chdirs into its data dir.
wait_for_orphans() {
    local deadline=$((SECONDS + 15)) found pid
    while :; do
        found=0
        for pid in $(pgrep -u "$PG_USER" postgres 2>/dev/null || true); do
            [[ $(readlink "/proc/$pid/cwd" 2>/dev/null) == "$DATA" ]] && found=1
        done
        ((found)) || return 0
        ((SECONDS < deadline)) || return 0
        sleep 0.5
    done
}

# reclaim_port: stop a postmaster that another checkout's postgres.sh started
# on our port (`postgres -D <state>/postgres-$PORT/data`). Only asked for by the
# test fixtures (OKR_POSTGRES_RECLAIM_PORT=1), whose clusters are throwaway: a
# killed test run in a since-deleted clone must not block the next one.
reclaim_port() {
    local dir pid args=() stale=()
    for dir in /proc/[0-9]*; do
        pid=${dir#/proc/}
        mapfile -d '' -t args 2>/dev/null <"$dir/cmdline" || continue
        ((${#args[@]} >= 3)) || continue
        [[ ${args[0]##*/} == postgres && ${args[1]} == -D ]] || continue
        [[ ${args[2]} == */postgres-"$PORT"/data && ${args[2]} != "$DATA" ]] || continue
        log "reclaiming port $PORT from another checkout's test cluster (pid $pid, ${args[2]})"
        stale+=("$pid")
    done
    ((${#stale[@]} > 0)) || return 0
    kill -INT "${stale[@]}" 2>/dev/null || true # SIGINT: fast shutdown
    local deadline=$((SECONDS + 20))
    while port_listening "$PORT" && ((SECONDS < deadline)); do sleep 0.5; done
    port_listening "$PORT" && kill -KILL "${stale[@]}" 2>/dev/null
    return 0
}

# ---------------------------------------------------------------- commands --

cmd_start() {
    ensure_server
    setup_user
    prepare_dirs
    lock_state

    [[ ${OKR_POSTGRES_RECLAIM_PORT:-0} == 1 ]] && reclaim_port
    if ready; then
        ours_answering ||
            die "port $PORT answers but it is not the cluster in $DATA; stop that server or set OKR_POSTGRES_PORT"
        ensure_database
        log "already running at 127.0.0.1:$PORT"
        printf '%s\n' "$DSN"
        return 0
    fi

    # Our postmaster is alive but not ready: maybe still in crash recovery,
    # maybe hung. Give it the start timeout, then stop it hard.
    local pid
    if pid=$(postmaster_pid) && alive "$pid" && is_our_postmaster "$pid"; then
        log "server (pid $pid) is up but not accepting connections yet; waiting"
        local deadline=$((SECONDS + START_TIMEOUT))
        while ! ready && ((SECONDS < deadline)) && alive "$pid"; do sleep 1; done
        if ready; then
            ensure_database
            printf '%s\n' "$DSN"
            return 0
        fi
        log "server (pid $pid) did not become ready; stopping it"
        as_pg "$BINDIR/pg_ctl" -D "$DATA" stop -m immediate -w -t 30 >&2 || kill -KILL "$pid" 2>/dev/null || true
    fi

    if port_listening "$PORT"; then
        die "port $PORT is taken by another program; stop it or set OKR_POSTGRES_PORT"
    fi

    ensure_initdb
    write_config
    clear_stale_lockfiles
    wait_for_orphans

    log "starting PostgreSQL $(basename "$(dirname "$BINDIR")") on 127.0.0.1:$PORT (data in $DATA)"
    if ! as_pg "$BINDIR/pg_ctl" -D "$DATA" -l "$LOG_FILE" -w -t "$START_TIMEOUT" start >&2; then
        log "server did not start; last lines of $LOG_FILE:"
        tail -n 40 "$LOG_FILE" >&2 || true
        exit 1
    fi
    # pg_ctl -w already waited; this also proves TCP on 127.0.0.1 works.
    local deadline=$((SECONDS + START_TIMEOUT))
    until ready; do
        ((SECONDS < deadline)) || die "server started but does not answer on 127.0.0.1:$PORT (see $LOG_FILE)"
        sleep 0.5
    done
    ensure_database
    log "ready at 127.0.0.1:$PORT"
    printf '%s\n' "$DSN"
}

cmd_stop() {
    if [[ ! -f $DATA/PG_VERSION ]] || ! find_bindir; then
        log "not running"
        return 0
    fi
    setup_user
    lock_state
    if ! as_pg "$BINDIR/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
        log "not running"
        return 0
    fi
    log "stopping PostgreSQL on 127.0.0.1:$PORT"
    as_pg "$BINDIR/pg_ctl" -D "$DATA" stop -m fast -w -t 60 >&2 ||
        as_pg "$BINDIR/pg_ctl" -D "$DATA" stop -m immediate -w -t 30 >&2
}

cmd_status() {
    if find_bindir && ready; then
        printf '%s\n' "$DSN"
        return 0
    fi
    log "not running (or not answering) at 127.0.0.1:$PORT"
    return 1
}

main() {
    (($# == 1)) || usage
    validate_settings
    case $1 in
        dsn)
            printf '%s\n' "$DSN"
            return 0
            ;;
        -h | --help | help) usage 0 ;;
    esac
    resolve_dirs
    case $1 in
        start) cmd_start ;;
        stop) cmd_stop ;;
        status) cmd_status ;;
        *) usage ;;
    esac
}

main "$@"
