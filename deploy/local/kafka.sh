#!/usr/bin/env bash
# Local single-node Apache Kafka (KRaft, combined broker+controller) for
# okrstream development and tests. No Docker and no Kafka tarball needed:
# the jars come from Maven Central through `mvn`, the JVM runs them directly.
#
# Usage: deploy/local/kafka.sh {fetch|start|stop|status|restart}
#
# stdout carries only the bootstrap address (start/status), so callers can do
#   KAFKA=$(deploy/local/kafka.sh start)
# Everything else (progress, errors, log tails) goes to stderr.
#
# Environment (all optional):
#   OKR_KAFKA_VERSION          org.apache.kafka:kafka_2.13 version (default 4.1.2)
#   OKR_KAFKA_PORT             client listener on 127.0.0.1 (default 19092)
#   OKR_KAFKA_CONTROLLER_PORT  KRaft controller listener (default 19093)
#   OKR_KAFKA_START_TIMEOUT    seconds to wait for the broker (default 90)
#   OKR_CACHE_DIR              shared jar cache (default $HOME/.cache/okrstream)
#   OKR_STATE_DIR              per-checkout state (default <repo>/.local)
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd -P)

KAFKA_VERSION=${OKR_KAFKA_VERSION:-4.1.2}
PORT=${OKR_KAFKA_PORT:-19092}
CPORT=${OKR_KAFKA_CONTROLLER_PORT:-19093}
START_TIMEOUT=${OKR_KAFKA_START_TIMEOUT:-90}
CACHE_DIR=${OKR_CACHE_DIR:-$HOME/.cache/okrstream}
STATE_ROOT=${OKR_STATE_DIR:-$REPO_ROOT/.local}

# Pinned so a fetch is reproducible instead of depending on whichever
# maven-dependency-plugin the local Maven happens to default to.
DEP_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1

# Written to the fetch marker. Bump the suffix whenever the set of fetched
# artifacts changes, so caches filled by an older version of this script are
# fetched again instead of trusted.
FETCH_ID=$KAFKA_VERSION/tools-log4j-1

BOOTSTRAP=127.0.0.1:$PORT
LOG4J_CONF=$SCRIPT_DIR/log4j2.properties
JAVA=${JAVA_HOME:+$JAVA_HOME/bin/}java

# Seconds a broker gets to shut down cleanly on SIGTERM before SIGKILL.
STOP_TIMEOUT=30

log() { printf '%s\n' "kafka.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

usage() { # usage EXIT_CODE
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
    exit "${1:-2}"
}

validate_settings() {
    local name value
    for name in PORT CPORT START_TIMEOUT; do
        value=${!name}
        [[ $value =~ ^[0-9]+$ ]] || die "$name must be a number, got '$value'"
    done
    ((PORT != CPORT)) || die "OKR_KAFKA_PORT and OKR_KAFKA_CONTROLLER_PORT must differ"
    # The version ends up in paths and in a generated pom.
    [[ $KAFKA_VERSION =~ ^[0-9A-Za-z._-]+$ ]] || die "odd OKR_KAFKA_VERSION '$KAFKA_VERSION'"
}

# Absolute, symlink-free paths: the state dir is matched against
# /proc/<pid>/cmdline to recognise our own brokers, so it must be spelled the
# same way every time.
resolve_dirs() {
    mkdir -p "$STATE_ROOT" "$CACHE_DIR"
    STATE_ROOT=$(cd "$STATE_ROOT" && pwd -P)
    CACHE_DIR=$(cd "$CACHE_DIR" && pwd -P)

    KAFKA_HOME=$CACHE_DIR/kafka-$KAFKA_VERSION
    LIBS=$KAFKA_HOME/libs
    FETCH_MARKER=$KAFKA_HOME/.fetch-complete

    KDIR=$STATE_ROOT/kafka-$PORT
    PROPS=$KDIR/server.properties
    DATA_DIR=$KDIR/data
    PID_FILE=$KDIR/kafka.pid
    LOG_FILE=$KDIR/broker.log
    CLUSTER_ID_FILE=$KDIR/cluster.id
    FORMAT_MARKER=$KDIR/formatted
    ADMIN_PROPS=$KDIR/admin.properties

    # Java for short-lived CLI tools: small heap, C1 only and serial GC, which
    # cuts their start-up time noticeably on a 2-core machine.
    TOOL_JAVA=("$JAVA" -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC
        -Djava.awt.headless=true -Dlog4j2.configurationFile="$LOG4J_CONF"
        -cp "$LIBS/*")
}

# ---------------------------------------------------------------- fetching --

have_libs() {
    [[ -f $FETCH_MARKER && -d $LIBS && $(<"$FETCH_MARKER") == "$FETCH_ID" ]]
}

require_tools() {
    local missing=()
    command -v "$JAVA" >/dev/null 2>&1 || missing+=(java)
    if [[ ${1:-} == mvn ]] && ! command -v mvn >/dev/null 2>&1; then
        missing+=(mvn)
    fi
    ((${#missing[@]} == 0)) && return 0
    # A fresh Debian machine may lack them: install from Debian's packages when we can.
    local sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null 2>&1 && sudo=(sudo -n)
    fi
    if command -v apt-get >/dev/null 2>&1 && { ((EUID == 0)) || ((${#sudo[@]} > 0)); }; then
        log "${missing[*]} not found; installing Debian's openjdk-17-jre-headless and maven"
        "${sudo[@]}" apt-get update >&2 || die "apt-get update failed"
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y --no-install-recommends \
            openjdk-17-jre-headless maven >&2 || die "installing Java and Maven failed"
        return 0
    fi
    die "${missing[*]} not found; install e.g. 'apt-get install openjdk-17-jre-headless maven' (Kafka 4 needs Java 17+)"
}

write_pom() { # write_pom FILE DEPENDENCY_XML...
    local file=$1
    shift
    {
        cat <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- Throwaway pom generated by deploy/local/kafka.sh; only used to let Maven
     resolve and copy Kafka's runtime jars. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>okrstream.local</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>0</version>
  <packaging>pom</packaging>
  <dependencies>
EOF
        printf '%s\n' "$@"
        cat <<EOF
  </dependencies>
</project>
EOF
    } >"$file"
}

dep_xml() { # dep_xml GROUP ARTIFACT VERSION [EXCLUSION_GROUP:EXCLUSION_ARTIFACT...]
    local g=$1 a=$2 v=$3 ex
    shift 3
    printf '    <dependency><groupId>%s</groupId><artifactId>%s</artifactId><version>%s</version>' "$g" "$a" "$v"
    if (($# > 0)); then
        printf '<exclusions>'
        for ex in "$@"; do
            printf '<exclusion><groupId>%s</groupId><artifactId>%s</artifactId></exclusion>' "${ex%%:*}" "${ex#*:}"
        done
        printf '</exclusions>'
    fi
    printf '</dependency>\n'
}

# Maven's output is only interesting when it fails (and even with -q it
# sprinkles colour escapes): keep it in a file, show its tail on failure.
run_mvn() {
    if ! mvn -B -Dstyle.color=never "$@" >"$FETCH_TMP/mvn.log" 2>&1; then
        grep -E '\[(ERROR|WARNING)\]' "$FETCH_TMP/mvn.log" | tail -n 20 >&2 || true
        return 1
    fi
}

fetch() {
    have_libs && return 0
    require_tools mvn
    mkdir -p "$KAFKA_HOME"

    # The cache is shared by every clone: serialise fetches of one version.
    # The lock file sits next to (not inside) the version dir.
    local lock=$CACHE_DIR/kafka-$KAFKA_VERSION.lock
    exec 8>"$lock"
    if ! flock -n 8; then
        log "waiting for another fetch of Kafka $KAFKA_VERSION to finish"
        flock -w 1800 8 || die "timed out waiting for $lock"
    fi
    if have_libs; then
        exec 8>&-
        return 0
    fi

    log "fetching Kafka $KAFKA_VERSION jars from Maven Central into $LIBS (one-off)"
    # Leftovers of an interrupted fetch: libs/ without the marker (killed
    # between the mv and writing the marker) and stale temp dirs.
    rm -rf "$LIBS" "$FETCH_MARKER" "$KAFKA_HOME"/.fetch.*
    FETCH_TMP=$(mktemp -d "$KAFKA_HOME/.fetch.XXXXXX")
    trap 'rm -rf "${FETCH_TMP:-}"' EXIT

    # Step 1: ask Maven which log4j2 and slf4j versions Kafka itself uses, so
    # the binding we add matches them instead of being hard-coded per version.
    write_pom "$FETCH_TMP/probe.xml" "$(dep_xml org.apache.kafka kafka_2.13 "$KAFKA_VERSION")"
    run_mvn -f "$FETCH_TMP/probe.xml" "$DEP_PLUGIN:list" -DincludeScope=runtime \
        -DoutputFile="$FETCH_TMP/deps.txt" ||
        die "mvn could not resolve org.apache.kafka:kafka_2.13:$KAFKA_VERSION (is the version on Maven Central?)"
    local log4j_version slf4j_version binding
    log4j_version=$(sed -n 's/.*org\.apache\.logging\.log4j:log4j-core:jar:\([^:]*\):.*/\1/p;T;q' "$FETCH_TMP/deps.txt")
    slf4j_version=$(sed -n 's/.*org\.slf4j:slf4j-api:jar:\([^:]*\):.*/\1/p;T;q' "$FETCH_TMP/deps.txt")
    [[ -n $slf4j_version ]] ||
        die "Kafka $KAFKA_VERSION does not depend on slf4j-api; this script expects Kafka 4.x"
    # Kafka 4.1+ brings log4j-core along (kafka-server needs it); 4.0.x
    # poms do not, although its distribution ships log4j 2.24.3 -- use that.
    log4j_version=${log4j_version:-2.24.3}
    # Kafka logs through slf4j but ships no binding; without one slf4j falls
    # back to a no-op logger and the broker log stays empty. slf4j 1.x finds
    # its binding through StaticLoggerBinder (log4j-slf4j-impl), slf4j 2.x
    # through a ServiceLoader provider (log4j-slf4j2-impl); they are not
    # interchangeable.
    if [[ $slf4j_version == 1.* ]]; then
        binding=log4j-slf4j-impl
    else
        binding=log4j-slf4j2-impl
    fi

    # Step 2: the real dependency set. kafka-tools carries the admin CLI
    # classes (ClusterTool, TopicCommand, console producer/consumer). Its
    # Kafka Connect dependencies (Jetty, Jersey, ...) only serve the
    # connect-plugin-path tool, so they are left out to keep the classpath
    # small and JVM start-up fast.
    write_pom "$FETCH_TMP/pom.xml" \
        "$(dep_xml org.apache.kafka kafka_2.13 "$KAFKA_VERSION")" \
        "$(dep_xml org.apache.kafka kafka-tools "$KAFKA_VERSION" \
            org.apache.kafka:connect-runtime \
            com.fasterxml.jackson.jakarta.rs:jackson-jakarta-rs-json-provider)" \
        "$(dep_xml org.apache.logging.log4j log4j-core "$log4j_version")" \
        "$(dep_xml org.apache.logging.log4j "$binding" "$log4j_version")"
    run_mvn -f "$FETCH_TMP/pom.xml" "$DEP_PLUGIN:copy-dependencies" \
        -DincludeScope=runtime -DoutputDirectory="$FETCH_TMP/libs" ||
        die "mvn failed to fetch the Kafka $KAFKA_VERSION runtime"

    local jar
    for jar in "kafka_2.13-$KAFKA_VERSION.jar" "kafka-tools-$KAFKA_VERSION.jar" \
        "log4j-core-$log4j_version.jar" "$binding-$log4j_version.jar"; do
        [[ -f $FETCH_TMP/libs/$jar ]] || die "fetch incomplete: $jar missing"
    done

    # Publish atomically: libs/ only appears once complete, and the marker
    # (which is what have_libs trusts) only after libs/ is in place.
    mv "$FETCH_TMP/libs" "$LIBS"
    printf '%s' "$FETCH_ID" >"$FETCH_MARKER.tmp"
    mv "$FETCH_MARKER.tmp" "$FETCH_MARKER"
    rm -rf "$FETCH_TMP"
    FETCH_TMP=
    exec 8>&-
    log "fetched $(find "$LIBS" -name '*.jar' | wc -l) jars ($binding $log4j_version for slf4j $slf4j_version)"
}

# -------------------------------------------------------------- processes --

run_tool() { # run_tool MAIN_CLASS ARGS...
    "${TOOL_JAVA[@]}" "$@"
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

# is_our_broker PID: its command line is `java ... kafka.Kafka <our
# server.properties>`. Guards against pid reuse and identifies orphans.
is_our_broker() {
    local args=() arg main=0 props=0
    mapfile -d '' -t args 2>/dev/null <"/proc/$1/cmdline" || return 1
    for arg in "${args[@]}"; do
        [[ $arg == kafka.Kafka ]] && main=1
        [[ $arg == "$PROPS" ]] && props=1
    done
    ((main && props))
}

# Every live broker started from this state dir: the pid file plus a scan of
# /proc, which also finds brokers whose pid file was lost.
our_broker_pids() {
    local pid dir
    for dir in /proc/[0-9]*; do
        pid=${dir#/proc/}
        [[ $pid == "$$" ]] && continue
        if is_our_broker "$pid" && alive "$pid"; then
            printf '%s\n' "$pid"
        fi
    done
}

# listener_pids PORT: pids owning a TCP socket listening on PORT (any local
# address). Uses /proc directly so it needs neither ss nor lsof.
listener_pids() {
    local port_hex inode
    port_hex=$(printf '%04X' "$1")
    awk -v p="$port_hex" '$4 == "0A" { split($2, a, ":"); if (a[2] == p) print $10 }' \
        /proc/net/tcp /proc/net/tcp6 2>/dev/null | sort -u |
        while read -r inode; do
            find /proc/[0-9]*/fd -maxdepth 1 -lname "socket:\[$inode\]" 2>/dev/null |
                cut -d/ -f3
        done | sort -u
}

port_listening() { # port_listening PORT
    local port_hex
    port_hex=$(printf '%04X' "$1")
    awk -v p="$port_hex" '$4 == "0A" { split($2, a, ":"); if (a[2] == p) found = 1 } END { exit !found }' \
        /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

terminate() { # terminate PID...: TERM, wait STOP_TIMEOUT, then KILL
    local pid deadline left
    (($# > 0)) || return 0
    log "stopping broker (pid $*)"
    kill -TERM "$@" 2>/dev/null || true
    deadline=$((SECONDS + STOP_TIMEOUT))
    while :; do
        left=()
        for pid in "$@"; do alive "$pid" && left+=("$pid"); done
        ((${#left[@]} == 0)) && return 0
        ((SECONDS >= deadline)) && break
        sleep 0.5
    done
    log "broker did not stop within ${STOP_TIMEOUT}s, killing pid ${left[*]}"
    kill -KILL "${left[@]}" 2>/dev/null || true
    deadline=$((SECONDS + 10))
    for pid in "${left[@]}"; do
        while alive "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
    done
}

# cluster id reported by whatever answers on our port, or nothing.
probe_cluster_id() {
    [[ -f $ADMIN_PROPS ]] || write_admin_props
    # `timeout` because the admin client would otherwise keep retrying against
    # a broker that accepts connections but never answers.
    timeout 25 "${TOOL_JAVA[@]}" org.apache.kafka.tools.ClusterTool cluster-id \
        --bootstrap-server "$BOOTSTRAP" --config "$ADMIN_PROPS" 2>/dev/null |
        sed -n 's/^Cluster ID: *//p'
}

# healthy: a broker answers on our port with the cluster id of THIS state dir
# (a Kafka from another checkout or a foreign one has a different id).
healthy() {
    local expected actual
    have_libs || return 1
    [[ -f $CLUSTER_ID_FILE ]] || return 1
    port_listening "$PORT" || return 1
    expected=$(<"$CLUSTER_ID_FILE")
    actual=$(probe_cluster_id) || return 1
    [[ -n $actual && $actual == "$expected" ]]
}

lock_state() {
    mkdir -p "$KDIR"
    exec 9>"$KDIR/lock"
    if ! flock -n 9; then
        log "waiting for another kafka.sh run on $KDIR"
        flock -w 1800 9 || die "timed out waiting for $KDIR/lock"
    fi
}

# ------------------------------------------------------------- configuring --

write_admin_props() {
    # Fail fast: a health probe must not hang for the client's 60 s default.
    cat >"$ADMIN_PROPS" <<EOF
request.timeout.ms=5000
default.api.timeout.ms=10000
socket.connection.setup.timeout.ms=2000
socket.connection.setup.timeout.max.ms=2000
EOF
}

write_server_properties() {
    cat >"$PROPS.tmp" <<EOF
# Generated by deploy/local/kafka.sh on every start; edits are overwritten.
# Single-node KRaft: this process is both the broker and the only controller.
process.roles=broker,controller
node.id=1
# Dynamic quorum (KIP-853) formatted with --standalone; controller.quorum.voters
# must not be set together with it.
controller.quorum.bootstrap.servers=127.0.0.1:$CPORT
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CPORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CPORT
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT

log.dirs=$DATA_DIR

# One broker: every internal topic must make do with one replica.
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Fewer internal partitions than the production default of 50: quicker first
# consumer group / transaction and fewer files, same semantics.
offsets.topic.num.partitions=5
transaction.state.log.num.partitions=5

# Tests want consumers assigned immediately, not after a 3 s grace period.
group.initial.rebalance.delay.ms=0
num.partitions=1
auto.create.topics.enable=true
delete.topic.enable=true

# Dev-sized storage: small segments, a day of retention, and a log cleaner
# that does not reserve 128 MB of the (small) heap for compaction.
log.segment.bytes=16777216
log.retention.hours=24
log.retention.check.interval.ms=60000
log.cleaner.dedupe.buffer.size=16777216
num.io.threads=4
num.network.threads=2
EOF
    mv "$PROPS.tmp" "$PROPS"
}

valid_cluster_id() { [[ $1 =~ ^[A-Za-z0-9_-]{22}$ ]]; }

ensure_cluster_id() {
    local id=
    [[ -f $CLUSTER_ID_FILE ]] && id=$(<"$CLUSTER_ID_FILE")
    valid_cluster_id "$id" && return 0
    id=$(run_tool kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1)
    valid_cluster_id "$id" || die "could not generate a cluster id (got '$id')"
    printf '%s\n' "$id" >"$CLUSTER_ID_FILE.tmp"
    mv "$CLUSTER_ID_FILE.tmp" "$CLUSTER_ID_FILE"
}

# Format KRaft storage once. The marker is written only after a successful
# format and records what the format depended on; anything else (no marker,
# meta.properties missing or for another cluster, controller port changed --
# the standalone voter set records its endpoint) means the data dir cannot be
# trusted, so it is wiped and formatted again. Topics are lost then, which is
# fine for a throwaway dev broker.
ensure_formatted() {
    local id expected
    id=$(<"$CLUSTER_ID_FILE")
    expected="cluster.id=$id controller.port=$CPORT"
    if [[ -f $FORMAT_MARKER && $(<"$FORMAT_MARKER") == "$expected" && -f $DATA_DIR/meta.properties ]] &&
        grep -qx "cluster.id=$id" "$DATA_DIR/meta.properties"; then
        return 0
    fi
    if [[ -e $DATA_DIR ]]; then
        log "data dir $DATA_DIR is not (completely) formatted for this broker; wiping it"
    fi
    rm -rf "$DATA_DIR" "$FORMAT_MARKER"
    log "formatting KRaft storage (cluster id $id)"
    run_tool kafka.tools.StorageTool format --standalone -t "$id" -c "$PROPS" >&2 ||
        die "formatting $DATA_DIR failed"
    printf '%s' "$expected" >"$FORMAT_MARKER.tmp"
    mv "$FORMAT_MARKER.tmp" "$FORMAT_MARKER"
}

# ---------------------------------------------------------------- commands --

fail_port_taken() { # fail_port_taken PORT
    local pid args=() seen=0
    for pid in $(listener_pids "$1"); do
        seen=1
        mapfile -d '' -t args 2>/dev/null <"/proc/$pid/cmdline" || args=()
        if [[ " ${args[*]} " == *" kafka.Kafka "* ]]; then
            # Most likely another checkout's broker: name its config.
            log "port $1 is held by a Kafka broker (pid $pid) using ${args[-1]}"
        else
            log "port $1 is held by pid $pid: $(printf '%s ' "${args[@]}" | cut -c1-200)"
        fi
    done
    ((seen)) || log "port $1 is in use by a process this script cannot see"
    die "port $1 is taken by something that is not this checkout's Kafka; stop it or set OKR_KAFKA_PORT / OKR_KAFKA_CONTROLLER_PORT"
}

# reclaim_ports: stop a broker that another checkout's kafka.sh started on our
# ports (its config is `<state>/kafka-$PORT/server.properties`). Only asked for
# by the test fixtures (OKR_KAFKA_RECLAIM_PORTS=1), whose brokers are throwaway:
# a killed test run in a since-deleted clone must not block the next one.
reclaim_ports() {
    local pid args=() stale=()
    for pid in $(listener_pids "$PORT") $(listener_pids "$CPORT"); do
        mapfile -d '' -t args 2>/dev/null <"/proc/$pid/cmdline" || continue
        if [[ " ${args[*]} " == *" kafka.Kafka "* && ${args[-1]} == */kafka-"$PORT"/server.properties ]]; then
            log "reclaiming port $PORT from another checkout's test broker (pid $pid, ${args[-1]})"
            stale+=("$pid")
        fi
    done
    ((${#stale[@]} > 0)) || return 0
    terminate "${stale[@]}"
    local deadline=$((SECONDS + 10))
    while { port_listening "$PORT" || port_listening "$CPORT"; } && ((SECONDS < deadline)); do
        sleep 0.5
    done
}

record_pid() {
    printf '%s\n' "$1" >"$PID_FILE.tmp"
    mv "$PID_FILE.tmp" "$PID_FILE"
}

cmd_start() {
    fetch
    require_tools
    lock_state
    write_admin_props

    local pid='' pids=()
    [[ -f $PID_FILE ]] && pid=$(<"$PID_FILE")
    if [[ -n $pid ]] && ! { alive "$pid" && is_our_broker "$pid"; }; then
        log "removing stale pid file (pid $pid is gone)"
        rm -f "$PID_FILE"
        pid=
    fi

    if healthy; then
        # Re-record the pid in case the pid file was lost.
        mapfile -t pids < <(our_broker_pids)
        ((${#pids[@]} > 0)) && record_pid "${pids[0]}"
        log "already running at $BOOTSTRAP"
        printf '%s\n' "$BOOTSTRAP"
        return 0
    fi

    # Whatever is left of ours is either still starting from an aborted run,
    # hung, or an orphan that lost its pid file: none of it is trustworthy.
    mapfile -t pids < <(our_broker_pids)
    if ((${#pids[@]} > 0)); then
        log "a broker from $KDIR is alive but not answering"
        terminate "${pids[@]}"
        # A killed JVM can hold its listening sockets for a moment while it
        # exits.
        local port_deadline=$((SECONDS + 10))
        while { port_listening "$PORT" || port_listening "$CPORT"; } && ((SECONDS < port_deadline)); do
            sleep 0.5
        done
    fi
    rm -f "$PID_FILE"

    [[ ${OKR_KAFKA_RECLAIM_PORTS:-0} == 1 ]] && reclaim_ports
    port_listening "$PORT" && fail_port_taken "$PORT"
    port_listening "$CPORT" && fail_port_taken "$CPORT"

    write_server_properties
    ensure_cluster_id
    ensure_formatted

    # Keep the previous run's log for post-mortems, start a fresh one.
    [[ -f $LOG_FILE ]] && mv -f "$LOG_FILE" "$LOG_FILE.1"

    log "starting Kafka $KAFKA_VERSION on $BOOTSTRAP (state in $KDIR)"
    # setsid: own session and process group, so the broker survives the
    # calling shell/terminal and Ctrl-C in it. cd: hs_err files land in the
    # state dir. 8>&- 9>&-: the broker must not inherit our lock fds, or it
    # would hold the lock for its whole life.
    (
        cd "$KDIR"
        exec setsid nohup "$JAVA" -Xms256m -Xmx1g \
            -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
            -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
            -Dlog4j2.configurationFile="$LOG4J_CONF" -Dokr.log.level=INFO \
            -cp "$LIBS/*" kafka.Kafka "$PROPS"
    ) </dev/null >>"$LOG_FILE" 2>&1 8>&- 9>&- &
    pid=$!
    record_pid "$pid"

    # healthy() only starts the (1 s) JVM probe once the client port listens,
    # which Kafka opens at the very end of its start-up; until then polling
    # is cheap, so poll often and print a progress dot about once a second.
    local deadline=$((SECONDS + START_TIMEOUT)) tick=0
    while :; do
        if ! alive "$pid"; then
            printf '\n' >&2
            log "broker exited during start-up; last lines of $LOG_FILE:"
            tail -n 40 "$LOG_FILE" >&2 || true
            rm -f "$PID_FILE"
            exit 1
        fi
        healthy && break
        if ((SECONDS >= deadline)); then
            printf '\n' >&2
            log "broker did not answer on $BOOTSTRAP within ${START_TIMEOUT}s; last lines of $LOG_FILE:"
            tail -n 40 "$LOG_FILE" >&2 || true
            # Do not leave a half-started 1 GB JVM behind.
            terminate "$pid"
            rm -f "$PID_FILE"
            exit 1
        fi
        ((tick++ % 4 == 0)) && printf '.' >&2
        sleep 0.25
    done
    printf '\n' >&2
    log "ready at $BOOTSTRAP"
    printf '%s\n' "$BOOTSTRAP"
}

cmd_stop() {
    lock_state
    local pids
    mapfile -t pids < <(our_broker_pids)
    if ((${#pids[@]} == 0)); then
        log "not running"
    else
        terminate "${pids[@]}"
    fi
    rm -f "$PID_FILE"
}

cmd_status() {
    if healthy; then
        printf '%s\n' "$BOOTSTRAP"
        return 0
    fi
    log "not running (or not answering) at $BOOTSTRAP"
    return 1
}

main() {
    (($# == 1)) || usage
    validate_settings
    resolve_dirs
    case $1 in
        fetch) fetch ;;
        start) cmd_start ;;
        stop) cmd_stop ;;
        status) cmd_status ;;
        restart)
            cmd_stop
            cmd_start
            ;;
        -h | --help | help) usage 0 ;;
        *) usage ;;
    esac
}

main "$@"
