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

# period_start PERIOD_MS: sleep to just after the start of the next period
# of the server's clock (aligned windows and epochs: buckets, the keys
# store's sliding-window), so that a test's requests fall within one.
period_start() {
    sleep_ms $(($1 - $(now_ms) % $1 + 50))
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

# cluster_start [ARGS...]: a Redis Cluster of 6 servers on loopback TCP
# ports (each also on a unix socket, $T/nodeN.sock, N = 1..6; the bus on
# a port of its own, chosen like the others: port + 10000 would fall in
# Linux's ephemeral range), node timeout 1 s, replicas that may always
# fail over (validity factor 0), made by `$RL_CLI_BIN --cluster create
# ... --cluster-replicas 1`: 3 masters with one replica each. Waits until
# cluster_ready 3. Sets CLUSTER_PORTS and CLUSTER_PIDS (arrays, node N at
# index N-1) and CLUSTER_URL (redis+cluster://127.0.0.1:P1,...:P3, no
# credentials; which 3 nodes became masters is the cli's choice). With
# CLUSTER_REQUIREPASS every node requires that password (of clients and of
# each other) and ccli sends it. ARGS go to every node.
cluster_start() {
    local i p bus pid ok addrs=() auth=() used=' '
    rl_tmp
    CLUSTER_PORTS=() CLUSTER_PIDS=()
    # A second cluster in the same test must not load the first's nodes.
    rm -f "$T"/nodes[1-6].conf
    [ -n "${CLUSTER_REQUIREPASS:-}" ] &&
        auth=(--requirepass "$CLUSTER_REQUIREPASS" --masterauth "$CLUSTER_REQUIREPASS")
    for i in 1 2 3 4 5 6; do
        p=$(free_port) && bus=$(free_port) || return 1
        while [[ "$used" == *" $p "* || "$used" == *" $bus "* || "$p" == "$bus" ]]; do
            p=$(free_port) && bus=$(free_port) || return 1
        done
        used="$used$p $bus "
        # repl-diskless-sync-delay 0: a replica's first sync at once, not
        # after the default 5 s wait for other replicas.
        # (Its PID is kept even when it never listens: cluster_stop stops it.)
        ok=1
        redis_server pid "$T/node$i.sock" --port "$p" --bind 127.0.0.1 \
            --cluster-enabled yes --cluster-port "$bus" \
            --cluster-config-file "$T/nodes$i.conf" --cluster-node-timeout 1000 \
            --cluster-replica-validity-factor 0 --repl-diskless-sync-delay 0 \
            "${auth[@]}" "$@" || ok=
        CLUSTER_PIDS+=("$pid")
        CLUSTER_PORTS+=("$p")
        addrs+=("127.0.0.1:$p")
        [ -n "$ok" ] && wait_for "127.0.0.1:$p" || return 1
    done
    cluster_cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes \
        >"$T/cluster-create.log" 2>&1 || {
        echo "cluster create failed:" >&2
        cat "$T/cluster-create.log" >&2
        return 1
    }
    retry 300 0.1 cluster_ready 3 || {
        echo "the cluster never became ready:" >&2
        ccli "${CLUSTER_PORTS[0]}" CLUSTER NODES >&2
        return 1
    }
    CLUSTER_URL="redis+cluster://${addrs[0]},${addrs[1]},${addrs[2]}"
}

# cluster_stop: stop every node cluster_start started, by PID.
cluster_stop() {
    local p
    for p in "${CLUSTER_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${CLUSTER_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    CLUSTER_PIDS=()
}

# cluster_cli ARGS...: the cli with CLUSTER_REQUIREPASS as its password when
# set (see rcli for why the variables are removed otherwise).
cluster_cli() {
    if [ -n "${CLUSTER_REQUIREPASS:-}" ]; then
        REDISCLI_AUTH="$CLUSTER_REQUIREPASS" VALKEYCLI_AUTH="$CLUSTER_REQUIREPASS" \
            "$RL_CLI_BIN" "$@"
    else
        env -u REDISCLI_AUTH -u VALKEYCLI_AUTH "$RL_CLI_BIN" "$@"
    fi
}

# ccli PORT ARGS...: the cli against the node on 127.0.0.1:PORT, without
# -c: a MOVED or ASK is printed as it comes, never followed. Several
# commands on one connection: give none and write them to its stdin.
ccli() {
    local p="$1"
    shift
    cluster_cli -h 127.0.0.1 -p "$p" "$@"
}

# cluster_pid PORT: the PID of the node on PORT.
cluster_pid() {
    local i
    for i in "${!CLUSTER_PORTS[@]}"; do
        [ "${CLUSTER_PORTS[$i]}" = "$1" ] && { echo "${CLUSTER_PIDS[$i]}"; return 0; }
    done
    return 1
}

# cluster_live: the ports of the nodes whose process still runs.
cluster_live() {
    local i
    for i in "${!CLUSTER_PORTS[@]}"; do
        kill -0 "${CLUSTER_PIDS[$i]}" 2>/dev/null && echo "${CLUSTER_PORTS[$i]}"
    done
    return 0
}

# cluster_seed: the port of the first live node that is a master: its view
# of the slots is the newest (SETSLOT goes to masters, replicas learn it
# later).
cluster_seed() {
    local p role
    for p in $(cluster_live); do
        role=$(ccli "$p" ROLE 2>/dev/null) || continue
        [ "${role%%$'\n'*}" = master ] && { echo "$p"; return 0; }
    done
    echo "no live master" >&2
    return 1
}

# cluster_nodes [PORT]: CLUSTER NODES of the node on PORT (default
# cluster_seed), one line a node: "ID PORT FLAGS MASTER-ID LINK SLOTS...",
# PORT its client port, MASTER-ID "-" for a master, SLOTS "A-B" or "A"
# ranges and, while a slot migrates, "[S->-ID]" or "[S-<-ID]".
cluster_nodes() {
    local p="${1:-}"
    [ -n "$p" ] || p=$(cluster_seed) || return 1
    ccli "$p" CLUSTER NODES | nodes_fields
}

# nodes_fields: CLUSTER NODES lines (stdin; other lines skipped) as
# cluster_nodes prints them.
nodes_fields() {
    awk '$1 ~ /^[0-9a-f]+$/ && length($1) == 40 && NF >= 8 {
        a = $2; sub(/@.*/, "", a); sub(/.*:/, "", a)
        printf "%s %s %s %s %s", $1, a, $3, $4, $8
        for (i = 9; i <= NF; i++) printf " %s", $i
        printf "\n" }'
}

# cluster_masters: the ports of the masters that serve slots now (not
# failed), sorted.
cluster_masters() {
    cluster_nodes | awk '$3 ~ /master/ && $3 !~ /fail/ && NF > 5 { print $2 }' | sort -n
}

# node_id PORT: the cluster node ID of the node on PORT.
node_id() {
    ccli "$1" CLUSTER MYID
}

# replica_of PORT: the port of a replica (not failed) of the master on
# PORT.
replica_of() {
    local id
    id=$(node_id "$1") || return 1
    cluster_nodes | awk -v m="$id" '$4 == m && $3 !~ /fail/ { print $2; exit }'
}

# key_slot KEY: the hash slot of KEY (CLUSTER KEYSLOT).
key_slot() {
    ccli "$(cluster_seed)" CLUSTER KEYSLOT "$1"
}

# slot_port SLOT [PORT]: the port of the master that owns SLOT in the view
# of the node on PORT (default cluster_seed); a slot that migrates belongs
# to its source until SETSLOT NODE. Nothing when no master owns it.
slot_port() {
    cluster_nodes "${2:-}" | awk -v s="$1" '$3 ~ /master/ && $3 !~ /fail/ {
        for (i = 6; i <= NF; i++) {
            if ($i ~ /^\[/) continue
            n = split($i, r, "-"); lo = r[1] + 0; hi = (n > 1 ? r[2] : r[1]) + 0
            if (s + 0 >= lo && s + 0 <= hi) { print $2; exit }
        } }'
}

# key_port KEY: the port of the master that owns KEY's slot.
key_port() {
    slot_port "$(key_slot "$1")"
}

# cluster_get KEY: GET KEY on the master that owns its slot.
cluster_get() {
    ccli "$(key_port "$1")" GET "$1"
}

# replica_get PORT KEY: GET KEY on the replica on PORT (after READONLY, on
# the same connection: a replica answers MOVED otherwise).
replica_get() {
    printf 'READONLY\nGET %s\n' "$2" | ccli "$1" | tail -n1
}

# asking_get PORT KEY: GET KEY on the node on PORT after ASKING, on the
# same connection (a node that imports KEY's slot answers MOVED otherwise).
asking_get() {
    printf 'ASKING\nGET %s\n' "$2" | ccli "$1" | tail -n1
}

# replica_has PORT KEY VALUE: the replica on PORT holds VALUE at KEY (for
# retry: replication is asynchronous).
replica_has() {
    [ "$(replica_get "$1" "$2")" = "$3" ]
}

# cluster_ready MASTERS: every live node says cluster_state:ok and sees
# MASTERS masters (not failed) that cover the 16384 slots together; each
# of them has a replica online (INFO replication on the master).
cluster_ready() {
    local p m view
    for p in $(cluster_live); do
        view=$(printf 'CLUSTER INFO\nCLUSTER NODES\n' | ccli "$p" 2>/dev/null) || return 1
        grep -q '^cluster_state:ok' <<<"$view" || return 1
        m=$(nodes_fields <<<"$view" | awk -v want="$1" '
            $3 ~ /master/ && $3 !~ /fail/ && NF > 5 {
                k++; ports = ports " " $2
                for (i = 6; i <= NF; i++) {
                    if ($i ~ /^\[/) continue
                    n = split($i, r, "-"); s += (n > 1 ? r[2] - r[1] + 1 : 1)
                } }
            END { if (k == want && s == 16384) print ports; else exit 1 }') || return 1
    done
    for p in $m; do
        ccli "$p" INFO replication | grep -q '^slave[0-9]*:.*state=online' || return 1
    done
}

# cluster_kill PORT: SIGKILL the node on PORT (by its PID) and reap it.
cluster_kill() {
    local pid
    pid=$(cluster_pid "$1") || return 1
    kill -9 "$pid" && wait_gone "$pid" || return 1
    wait "$pid" 2>/dev/null || true
}

# cluster_requirepass PASSWORD: from now on every live node requires
# PASSWORD (CONFIG SET masterauth, then requirepass, so that replication
# goes on) and ccli sends it (CLUSTER_REQUIREPASS).
cluster_requirepass() {
    local p
    for p in $(cluster_live); do
        ccli "$p" CONFIG SET masterauth "$1" | grep -qx OK &&
            ccli "$p" CONFIG SET requirepass "$1" | grep -qx OK || return 1
    done
    CLUSTER_REQUIREPASS="$1"
}

# cluster_ok: every live node says cluster_state:ok.
cluster_ok() {
    local p
    for p in $(cluster_live); do
        ccli "$p" CLUSTER INFO 2>/dev/null | grep -q '^cluster_state:ok' || return 1
    done
}

# cluster_failed_over OLD NEW: the master on port OLD no longer serves
# slots, the node on NEW is a master that does, and every live node says
# cluster_state:ok.
cluster_failed_over() {
    local m
    m=$(cluster_masters) || return 1
    ! grep -qx "$1" <<<"$m" && grep -qx "$2" <<<"$m" && cluster_ok
}

# slot_migrate_begin SLOT FROM TO: the first half of moving SLOT from the
# master on port FROM to the master on port TO: TO IMPORTING, then FROM
# MIGRATING (FROM answers ASK for the slot's keys it no longer holds).
slot_migrate_begin() {
    ccli "$3" CLUSTER SETSLOT "$1" IMPORTING "$(node_id "$2")" | grep -qx OK &&
        ccli "$2" CLUSTER SETSLOT "$1" MIGRATING "$(node_id "$3")" | grep -qx OK
}

# slot_migrate_keys SLOT FROM TO: MIGRATE every key of SLOT from FROM to TO
# (TTLs kept); fails when a key is left behind.
slot_migrate_keys() {
    local k
    while :; do
        k=$(ccli "$2" CLUSTER GETKEYSINSLOT "$1" 100)
        [ -n "$k" ] || break
        # shellcheck disable=SC2086 # keys are words (ours have no spaces)
        ccli "$2" MIGRATE 127.0.0.1 "$3" "" 0 5000 KEYS $k | grep -qx OK || return 1
    done
    [ "$(ccli "$2" CLUSTER COUNTKEYSINSLOT "$1")" = 0 ]
}

# slot_migrate_end SLOT TO: CLUSTER SETSLOT SLOT NODE TO on every master
# that serves slots, TO first (the order the Redis manual gives).
slot_migrate_end() {
    local id p
    id=$(node_id "$2") || return 1
    ccli "$2" CLUSTER SETSLOT "$1" NODE "$id" | grep -qx OK || return 1
    for p in $(cluster_masters); do
        [ "$p" = "$2" ] && continue
        ccli "$p" CLUSTER SETSLOT "$1" NODE "$id" | grep -qx OK || return 1
    done
}

# slot_migrate SLOT FROM TO: the whole move of SLOT, keys included, with
# the cli (do it with no traffic); returns when every live node names TO
# as its owner.
slot_migrate() {
    slot_migrate_begin "$@" && slot_migrate_keys "$@" && slot_migrate_end "$1" "$3" &&
        retry 100 0.1 slot_owned_everywhere "$1" "$3"
}

# slot_owned_everywhere SLOT PORT: every live node names PORT as SLOT's
# owner.
slot_owned_everywhere() {
    local p
    for p in $(cluster_live); do
        [ "$(slot_port "$1" "$p")" = "$2" ] || return 1
    done
}
