# redis.bash - the private Redis of a test: a redis-server (or
# valkey-server, see RL_REDIS_SERVER) on a unix socket in the test's
# folder, its cli, and what its keys hold.

# RL_REDIS_SERVER=redis|valkey (default redis): the server every suite
# starts, and its cli. The one place that names them: tests start servers
# with redis_server and talk to them through rcli ("$RL_CLI_BIN").
# ./run-tests --valkey sets valkey (Debian 13's valkey-server).
case "${RL_REDIS_SERVER:=redis}" in
redis) RL_SERVER_BIN=redis-server RL_CLI_BIN=redis-cli ;;
valkey) RL_SERVER_BIN=valkey-server RL_CLI_BIN=valkey-cli ;;
*)
    echo "RL_REDIS_SERVER must be redis or valkey, not '$RL_REDIS_SERVER'" >&2
    return 1
    ;;
esac
export RL_REDIS_SERVER RL_SERVER_BIN RL_CLI_BIN

# redis_server VAR SOCK [ARGS...]: start a server ($RL_SERVER_BIN) on the
# unix socket SOCK (mode 777; no TCP port, no persistence; its folder is
# the socket's, its log SOCK's name with .log for .sock), with ARGS after
# those (a later option wins: --port, --bind, --requirepass); its PID in
# the variable VAR, set before it waits until SOCK listens.
redis_server() {
    local var="$1" sock="$2"
    shift 2
    "$RL_SERVER_BIN" --port 0 --unixsocket "$sock" --unixsocketperm 777 \
        --save '' --appendonly no --dir "$(dirname "$sock")" --daemonize no \
        --logfile "${sock%.sock}.log" "$@" 3>&- &
    printf -v "$var" '%s' "$!"
    wait_for "$sock"
}

# redis_start: the test's server on $T/redis.sock (with REDIS_REQUIREPASS as
# its password, when set); sets REDIS_SOCK, REDIS_PID and, for the binary,
# RATELIMIT_REDIS_URL.
redis_start() {
    local auth=()
    rl_tmp
    REDIS_SOCK="$T/redis.sock"
    [ -n "${REDIS_REQUIREPASS:-}" ] && auth=(--requirepass "$REDIS_REQUIREPASS")
    export REDIS_SOCK RATELIMIT_REDIS_URL="unix://$REDIS_SOCK"
    # A loaded CI machine (2 cores, sanitizers, valgrind) must not turn a
    # slow answer into a Redis outage; the resilience tests set their own.
    export RATELIMIT_REDIS_TIMEOUT_MS="${RATELIMIT_REDIS_TIMEOUT_MS:-2000}"
    redis_server REDIS_PID "$REDIS_SOCK" "${auth[@]}"
}

# redis_stop: stop the test's server by PID and wait for it.
redis_stop() {
    if [ -n "${REDIS_PID:-}" ]; then
        kill "$REDIS_PID" 2>/dev/null || true
        wait "$REDIS_PID" 2>/dev/null || true
        REDIS_PID=
    fi
}

# rcli ARGS...: the cli ($RL_CLI_BIN) against the test's server.
# REDISCLI_AUTH (valkey-cli: VALKEYCLI_AUTH, or the old name) only when
# there is a password: redis-cli 7 sends AUTH "" for an empty one, and
# --scan then fails (exit 1, no output) on a server without one.
rcli() {
    if [ -n "${REDIS_REQUIREPASS:-}" ]; then
        REDISCLI_AUTH="$REDIS_REQUIREPASS" VALKEYCLI_AUTH="$REDIS_REQUIREPASS" \
            "$RL_CLI_BIN" -s "$REDIS_SOCK" "$@"
    else
        env -u REDISCLI_AUTH -u VALKEYCLI_AUTH "$RL_CLI_BIN" -s "$REDIS_SOCK" "$@"
    fi
}

# now_ms: the server's clock in ms.
now_ms() {
    rcli TIME | tr '\n' ' ' | awk '{ printf "%.0f", $1 * 1000 + int($2 / 1000) }'
}

# key_states: one line "TYPE PTTL SIZE" per key in Redis, sorted. SIZE:
# ZCARD of a sorted set, HLEN of a hash; for a string, the fixed-window
# count, the c of a sliding-window "s c p", or "tat" for a token-bucket
# "@tat". Take it right after the requests it describes, before anything
# slow: the keys of a 3 s window may be gone by the time the answers are
# checked.
key_states() {
    local k t size
    for k in $(rcli --scan --pattern '*'); do
        t=$(rcli TYPE "$k")
        case $t in
        string)
            size=$(rcli GET "$k")
            case $size in
            @*) size=tat ;;
            *' '*) size=$(cut -d' ' -f2 <<<"$size") ;;
            esac
            ;;
        zset) size=$(rcli ZCARD "$k") ;;
        hash) size=$(rcli HLEN "$k") ;;
        *) size=? ;;
        esac
        echo "$t $(rcli PTTL "$k") $size"
    done | sort
}

# keys_all_expire [STATES]: every key (of STATES, output of key_states,
# or of Redis now) has a TTL (PTTL > 0), and there is at least one key.
keys_all_expire() {
    local states="${1-$(key_states)}" t pttl size n=0
    while read -r t pttl size; do
        if ! [ "$pttl" -gt 0 ]; then
            echo "a $t key has PTTL $pttl" >&2
            return 1
        fi
        n=$((n + 1))
    done <<<"$states"
    [ "$n" -ge 1 ]
}

# sentinel_start: a master and its replica (loopback TCP ports, and a unix
# socket each for the cli: $T/master.sock, $T/replica.sock) and three
# sentinels watching the master as "mymaster" (down after 1 s), each knowing
# the replica and the two other sentinels. Sets MASTER_PORT, REPLICA_PORT,
# SENTINEL_PORTS (array), SENTINEL_URL (redis+sentinel://... without
# credentials) and the PIDs in SENTINEL_SERVER_PIDS (array, stopped by
# sentinel_stop). With SENTINEL_REQUIREPASS the sentinels require that
# password (of clients and of each other); ARGS go to both servers.
sentinel_start() {
    local i p s
    rl_tmp
    SENTINEL_SERVER_PIDS=() SENTINEL_PORTS=()
    MASTER_PORT=$(free_port)
    redis_server p "$T/master.sock" --port "$MASTER_PORT" --bind 127.0.0.1 "$@"
    SENTINEL_SERVER_PIDS+=("$p")
    REPLICA_PORT=$(free_port)
    redis_server p "$T/replica.sock" --port "$REPLICA_PORT" --bind 127.0.0.1 \
        --replicaof 127.0.0.1 "$MASTER_PORT" "$@"
    SENTINEL_SERVER_PIDS+=("$p")
    retry 100 0.1 replica_synced "$T/replica.sock"
    for i in 1 2 3; do
        p=$(free_port)
        {
            echo "port $p"
            echo "bind 127.0.0.1"
            echo "dir $T"
            echo "logfile $T/sentinel$i.log"
            echo "sentinel monitor mymaster 127.0.0.1 $MASTER_PORT 2"
            echo "sentinel down-after-milliseconds mymaster 1000"
            echo "sentinel failover-timeout mymaster 4000"
            [ -n "${MASTER_AUTH:-}" ] && echo "sentinel auth-pass mymaster $MASTER_AUTH"
            if [ -n "${SENTINEL_REQUIREPASS:-}" ]; then
                echo "requirepass $SENTINEL_REQUIREPASS"
                echo "sentinel sentinel-pass $SENTINEL_REQUIREPASS"
            fi
        } >"$T/sentinel$i.conf"
        "$RL_SERVER_BIN" "$T/sentinel$i.conf" --sentinel 3>&- &
        SENTINEL_SERVER_PIDS+=("$!")
        SENTINEL_PORTS+=("$p")
        wait_for "127.0.0.1:$p"
    done
    for p in "${SENTINEL_PORTS[@]}"; do
        retry 150 0.1 sentinel_ready "$p"
    done
    s=
    for p in "${SENTINEL_PORTS[@]}"; do s="$s${s:+,}127.0.0.1:$p"; done
    SENTINEL_URL="redis+sentinel://$s/mymaster"
}

# replica_synced SOCK: the server on SOCK is a replica whose link is up.
replica_synced() {
    rcli_at "$1" INFO replication | grep -q '^master_link_status:up'
}

# sentinel_ready PORT: the sentinel on PORT knows the replica and the two
# other sentinels (so that it can vote and fail over).
sentinel_ready() {
    [ "$(scli "$1" SENTINEL REPLICAS mymaster | grep -c '^name$')" -ge 1 ] &&
        [ "$(scli "$1" SENTINEL SENTINELS mymaster | grep -c '^name$')" -ge 2 ]
}

# scli PORT ARGS...: the cli against the sentinel on 127.0.0.1:PORT.
scli() {
    local p="$1"
    shift
    if [ -n "${SENTINEL_REQUIREPASS:-}" ]; then
        REDISCLI_AUTH="$SENTINEL_REQUIREPASS" VALKEYCLI_AUTH="$SENTINEL_REQUIREPASS" \
            "$RL_CLI_BIN" -h 127.0.0.1 -p "$p" "$@"
    else
        env -u REDISCLI_AUTH -u VALKEYCLI_AUTH "$RL_CLI_BIN" -h 127.0.0.1 -p "$p" "$@"
    fi
}

# rcli_at SOCK ARGS...: the cli against the server on the unix socket SOCK
# (with MASTER_AUTH as the password when set).
rcli_at() {
    local s="$1"
    shift
    if [ -n "${MASTER_AUTH:-}" ]; then
        REDISCLI_AUTH="$MASTER_AUTH" VALKEYCLI_AUTH="$MASTER_AUTH" "$RL_CLI_BIN" -s "$s" "$@"
    else
        env -u REDISCLI_AUTH -u VALKEYCLI_AUTH "$RL_CLI_BIN" -s "$s" "$@"
    fi
}

# sentinel_master PORT: "HOST PORT" of the master the sentinel on PORT names.
sentinel_master() {
    scli "$1" SENTINEL get-master-addr-by-name mymaster | tr '\n' ' ' | sed 's/ $//'
}

# sentinel_stop: stop what sentinel_start started, by PID.
sentinel_stop() {
    local p
    for p in "${SENTINEL_SERVER_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${SENTINEL_SERVER_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    SENTINEL_SERVER_PIDS=()
}
