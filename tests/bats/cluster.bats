#!/usr/bin/env bats
# cluster.bats - RATELIMIT_REDIS_URL=redis+cluster://...: a real Redis
# Cluster, 3 masters and 3 replicas on loopback ports (lib/redis.bash
# cluster_start). The filter learns the slot map from the seed nodes, sends
# each client's key to the master that owns its slot, follows MOVED and ASK
# while a slot migrates, loads its script again after SCRIPT FLUSH and
# finds the promoted replica after a master dies; every server is stopped
# by its PID. The slots are moved with the cli, synchronously, between
# requests, or while a bounded traffic of curl requests flows: every
# assertion is about counts and answers, none about time.

load lib/load

setup() {
    cluster_start
    export RATELIMIT_REDIS_URL="$CLUSTER_URL"
    export RATELIMIT_BACKEND="$FIXTURES/cgi/ok.cgi"
    export RATELIMIT_LIMIT=3 RATELIMIT_WINDOW=1m
    export RATELIMIT_REDIS_TIMEOUT_MS=2000
    LT_PIDS=() LT_URLS=() PLAIN_PID='' FEED='' TRAFFIC_PID=''
}

teardown() {
    traffic_stop
    lighttpd_stop_hosts
    fcgi_stop
    kill_leftovers
    if [ -n "${PLAIN_PID:-}" ]; then
        kill "$PLAIN_PID" 2>/dev/null || true
        wait "$PLAIN_PID" 2>/dev/null || true
    fi
    cluster_stop
}

# other_master PORT: a master (serving slots) that is not the one on PORT.
other_master() {
    cluster_masters | grep -vx "$1" | head -n1
}

# keys_per_master: "PORT DBSIZE" for each master, sorted by port.
keys_per_master() {
    local m
    for m in $(cluster_masters); do
        echo "$m $(ccli "$m" DBSIZE)"
    done
}

# req_expect STATUS...: one FastCGI request to the worker per STATUS, each
# answered with that status.
req_expect() {
    local want
    for want in "$@"; do
        run fcgi_req </dev/null
        assert_equal "$(status_of)" "$want"
    done
}

# check_then_limit: --check passes seeing the whole cluster; plain CGI
# requests of 127.0.0.1 get 3 x 200 then 429, the count 3 on the master of
# the client's slot.
check_then_limit() {
    local want
    run check_run
    assert_success
    assert_output --partial "cluster: 3 masters, all 16384 slots covered"
    for want in 200 200 200 429; do
        run cgi_run </dev/null
        assert_equal "$(status_of)" "$want"
    done
    assert_equal "$(cluster_get "$(ip_key 127.0.0.1)")" 3
}

# readme_acl_user PASSWORD: README.md's least-privilege user "ratelimit"
# with PASSWORD on every node (ACL users are not replicated nor spread by
# the cluster bus), and RATELIMIT_REDIS_URL with it.
readme_acl_user() {
    local line p
    line=$(grep -m1 '^ACL SETUSER ratelimit ' "$RL_SRCDIR/README.md")
    line=${line/>PASSWORD/>$1}
    for p in "${CLUSTER_PORTS[@]}"; do
        # shellcheck disable=SC2086 # the line is words; set -f keeps ~ratelimit:*
        (set -f; ccli "$p" $line) | grep -qx OK
    done
    export RATELIMIT_REDIS_URL="redis+cluster://ratelimit:$1@${CLUSTER_URL#redis+cluster://}"
}

# key_state KEY: what the master of KEY's slot holds there, one word: the
# string, "zset:N" for a sorted set of N entries, or "none".
key_state() {
    local port
    port=$(key_port "$1")
    case "$(ccli "$port" TYPE "$1")" in
    string) ccli "$port" GET "$1" ;;
    zset) echo "zset:$(ccli "$port" ZCARD "$1")" ;;
    *) echo none ;;
    esac
}

# same_state A B: two key_state words are the same counter; a token
# bucket's "@tat" given back is the same time within 1 us (its arithmetic
# is in doubles).
same_state() {
    if [[ "$1" == @* && "$2" == @* ]]; then
        awk -v a="${1#@}" -v b="${2#@}" 'BEGIN { d = a - b; exit !(d < 1 && d > -1) }'
    else
        [ "$1" = "$2" ]
    fi
}

# req_as ADDR APIKEY: one plain CGI request of client ADDR with that
# X-Api-Key; prints its status.
req_as() {
    run cgi_run REMOTE_ADDR="$1" HTTP_X_API_KEY="$2" </dev/null
    status_of
}

@test "cluster: --check sees 3 masters and every slot; limits are exact; the count is on the slot's master only" {
    run check_run
    assert_success
    assert_output --partial "cluster: 3 masters, all 16384 slots covered"
    for want in 200 200 200; do
        run cgi_run </dev/null
        assert_equal "$(status_of)" "$want"
        assert_output --partial "ok 127.0.0.1"
    done
    run cgi_run </dev/null
    assert_denied 60
    key=$(ip_key 127.0.0.1)
    owner=$(key_port "$key")
    assert_equal "$(ccli "$owner" GET "$key")" 3
    assert_equal "$(cluster_get "$key")" 3
    # One key in the whole cluster, on that master; its replica has a copy.
    while read -r m n; do
        if [ "$m" = "$owner" ]; then assert_equal "$n" 1; else assert_equal "$n" 0; fi
    done < <(keys_per_master)
    retry 50 0.1 replica_has "$(replica_of "$owner")" "$key" 3
}

@test "cluster: a dead seed first in the list is passed over" {
    dead=$(free_port)
    export RATELIMIT_REDIS_URL="redis+cluster://127.0.0.1:$dead,${CLUSTER_URL#redis+cluster://}"
    check_then_limit
}

# slot_unserved SLOT: DELSLOTS SLOT on every node (an error where it is not
# assigned); then no master serves it.
slot_unserved() {
    local p
    for p in "${CLUSTER_PORTS[@]}"; do
        ccli "$p" CLUSTER DELSLOTS "$1" >/dev/null
    done
    [ -z "$(slot_port "$1")" ]
}

@test "cluster: a slot that no master serves: --check fails and says slots are not covered" {
    slot=$(key_slot "$(ip_key 127.0.0.1)")
    # Every node forgets the slot (one that only its owner dropped would
    # still be claimed in the others' maps; gossip from a node not yet told
    # may give it back to one already told: again until none serves it).
    retry 20 0.2 slot_unserved "$slot"
    run check_run
    assert_failure
    assert_output --partial "slots"
    refute_output --partial "all 16384 slots covered"
}

@test "cluster: a seed that is no cluster node: --check fails naming the cluster, a request fails closed" {
    p=$(free_port)
    redis_server PLAIN_PID "$T/plain.sock" --port "$p" --bind 127.0.0.1
    export RATELIMIT_REDIS_URL="redis+cluster://127.0.0.1:$p"
    run check_run
    assert_failure
    assert_output --partial "cluster"
    RATELIMIT_FAIL=closed run cgi_run </dev/null
    assert_equal "$(status_of)" 503
    refute_output --partial "ok 127.0.0.1"
    # Nothing was counted on the stand-alone server.
    assert_equal "$(rcli_at "$T/plain.sock" DBSIZE)" 0
}

@test "cluster: 60 clients' keys spread over the 3 masters, each key once" {
    for i in $(seq 60); do
        run cgi_run "REMOTE_ADDR=10.9.0.$i" </dev/null
        assert_equal "$(status_of)" 200
    done
    assert_equal "$(cluster_masters | wc -l)" 3
    total=0
    : >"$T/keys"
    for m in $(cluster_masters); do
        n=$(ccli "$m" DBSIZE)
        echo "# master $m: $n keys" >&3
        [ "$n" -gt 0 ]
        total=$((total + n))
        ccli "$m" --scan >>"$T/keys"
    done
    assert_equal "$total" 60
    # Exactly the 60 clients' keys.
    for i in $(seq 60); do ip_key "10.9.0.$i"; done | sort >"$T/want"
    sort "$T/keys" | diff - "$T/want"
}

@test "cluster: three lighttpd hosts (4 workers each), 300 requests 30 at a time round-robin: exactly LIMIT admitted" {
    command -v lighttpd >/dev/null || skip "lighttpd is not installed"
    www_setup
    for h in 1 2 3; do
        lighttpd_start_host "$T/web$h" 50-fcgi-ratelimit.conf
    done
    urls=()
    for u in "${LT_URLS[@]}"; do urls+=("$u/cgi-bin/ok.cgi"); done
    burst_codes_over 300 30 "${urls[@]}" >"$T/codes"
    assert_exact_split "$T/codes" 100 200
    # Denials are not counted: the key holds the admitted ones.
    assert_equal "$(cluster_get "$(ip_key 127.0.0.1)")" 100
    # Every host ran its 4 filter processes.
    for h in 1 2 3; do
        [ -S "$T/web$h/fcgi-ratelimit.sock-3" ]
    done
}

@test "cluster: MOVED: the client's slot migrated to another master under a running worker; the count goes on there" {
    fcgi_start 1
    worker=$(fcgi_pids)
    key=$(ip_key 127.0.0.1)
    req_expect 200
    slot=$(key_slot "$key")
    from=$(slot_port "$slot")
    to=$(other_master "$from")
    assert_equal "$(ccli "$from" GET "$key")" 1
    # The whole move: IMPORTING, MIGRATING, MIGRATE, SETSLOT NODE.
    slot_migrate "$slot" "$from" "$to"
    assert_equal "$(ccli "$to" GET "$key")" 1
    ccli "$from" GET "$key" | grep -q "MOVED $slot 127.0.0.1:$to"
    # The worker's map names the old owner, which answers MOVED: the
    # worker follows it, and counts on the new owner.
    run fcgi_req </dev/null
    assert_equal "$(status_of)" 200
    assert_equal "$(header_of X-RateLimit-Remaining)" 1
    assert_equal "$(ccli "$to" GET "$key")" 2
    req_expect 200 429
    assert_equal "$(ccli "$to" GET "$key")" 3
    # Nothing was written to the old owner; a new process finds the new
    # owner too; the worker is the same process.
    assert_equal "$(ccli "$from" DBSIZE)" 0
    run cgi_run </dev/null
    assert_equal "$(status_of)" 429
    assert_equal "$(fcgi_pids)" "$worker"
}

@test "cluster: ASK: a request in the middle of a migration, the key already moved, counts on the target" {
    fcgi_start 1
    key=$(ip_key 127.0.0.1)
    req_expect 200
    slot=$(key_slot "$key")
    from=$(slot_port "$slot")
    to=$(other_master "$from")
    # Half a migration: the target imports, the source migrates, the key
    # is on the target already; the source answers ASK for it.
    slot_migrate_begin "$slot" "$from" "$to"
    slot_migrate_keys "$slot" "$from" "$to"
    ccli "$from" GET "$key" | grep -q "ASK $slot 127.0.0.1:$to"
    assert_equal "$(asking_get "$to" "$key")" 1
    run fcgi_req </dev/null
    assert_equal "$(status_of)" 200
    assert_equal "$(header_of X-RateLimit-Remaining)" 1
    # The count grew on the target (ASKING, then the script there); the
    # source still owns the slot and holds nothing.
    assert_equal "$(asking_get "$to" "$key")" 2
    assert_equal "$(ccli "$from" CLUSTER COUNTKEYSINSLOT "$slot")" 0
    assert_equal "$(slot_port "$slot")" "$from"
    # The migration finished: the count goes on on the new owner.
    slot_migrate_end "$slot" "$to"
    retry 100 0.1 slot_owned_everywhere "$slot" "$to"
    req_expect 200 429
    assert_equal "$(ccli "$to" GET "$key")" 3
    assert_equal "$(ccli "$from" DBSIZE)" 0
}

# The reshard test's clients: key-1..key-50 by X-Api-Key, client I sends
# 7 + I % 11 requests (591 in all) and may pass RESHARD_LIMIT of them.
RESHARD_CLIENTS=50 RESHARD_LIMIT=10

# reqs_of I: how many requests client key-I sends.
reqs_of() {
    echo $((7 + $1 % 11))
}

# want_of I: how many of them must be admitted.
want_of() {
    local n
    n=$(reqs_of "$1")
    echo $((n < RESHARD_LIMIT ? n : RESHARD_LIMIT))
}

# reshard_plan URL...: $T/plan, the requests in the order they are sent,
# one a line as xargs reads them ("X-Api-Key: key-I" URL?c=key-I), each
# client's spread evenly over the run (its K-th request at (K + an offset
# of its own) / its number of requests), the URLs taken in turn. Sets
# PLANNED (the number of lines).
reshard_plan() {
    local i k r
    for ((i = 1; i <= RESHARD_CLIENTS; i++)); do
        r=$(reqs_of "$i")
        for ((k = 0; k < r; k++)); do
            echo "$(((k * 100 + i * 37 % 100) * 10000 / r)) $i"
        done
    done | sort -k1,1n -k2,2n | awk -v urls="$*" '
        BEGIN { nu = split(urls, u, " ") }
        { printf "\"X-Api-Key: key-%d\" %s?c=key-%d\n", $2, u[NR % nu + 1], $2 }' >"$T/plan"
    PLANNED=$(wc -l <"$T/plan")
}

# traffic_start P: curl runs the requests written to the FIFO $T/feed
# (a plan line: -H's value and the URL) P at a time in the background
# (TRAFFIC_PID), each bounded by --max-time; one line per answer in
# $T/record: "STATUS URL". The FIFO is held open as fd FEED (read-write:
# the open does not wait for the reader); FED counts the requests written.
traffic_start() {
    mkfifo "$T/feed"
    exec {FEED}<>"$T/feed"
    xargs -P "$1" -n 2 curl -s -o /dev/null --max-time 30 \
        -w '%{http_code} %{url_effective}\n' -H <"$T/feed" >"$T/record" 3>&- {FEED}>&- &
    TRAFFIC_PID=$!
    FED=0
}

# traffic_feed N: write the next N requests of $T/plan (fewer at its end).
traffic_feed() {
    sed -n "$((FED + 1)),$((FED + $1))p" "$T/plan" >&"$FEED"
    FED=$((FED + $1 < PLANNED ? FED + $1 : PLANNED))
}

# traffic_wait K: until at most K of the requests fed are unanswered.
traffic_wait() {
    wait_lines "$T/record" $((FED - $1))
}

# traffic_end: feed the rest, close the feed and reap the traffic.
traffic_end() {
    traffic_feed "$PLANNED"
    exec {FEED}>&-
    FEED=
    wait "$TRAFFIC_PID" || true
    TRAFFIC_PID=
}

# traffic_stop: close the feed and stop the traffic, if still running.
traffic_stop() {
    if [ -n "${FEED:-}" ]; then
        exec {FEED}>&-
        FEED=
    fi
    if [ -n "${TRAFFIC_PID:-}" ]; then
        kill "$TRAFFIC_PID" 2>/dev/null || true
        wait "$TRAFFIC_PID" 2>/dev/null || true
        TRAFFIC_PID=
    fi
}

# next_clients: the client numbers in the order of their next request in
# the plan not fed yet.
next_clients() {
    awk -v fed="$FED" 'NR > fed {
        c = $NF; sub(/.*c=key-/, "", c)
        if (!(c in seen)) { seen[c] = 1; print c } }' "$T/plan"
}

# pick_client FROM: a client not moved yet (MOVED_AT) whose key lives on
# the master on FROM (CLIENT_PORT) with 3 or more admissions to come (one
# may be under way, one for the migration, one after), the one whose next
# request comes first.
pick_client() {
    local i c
    for i in $(next_clients); do
        if [ "${CLIENT_PORT[i]}" != "$1" ] || [ -n "${MOVED_AT[i]:-}" ]; then
            continue
        fi
        c=$(ccli "$1" GET "$(header_key "key-$i")")
        if [ -n "$c" ] && [ "$c" -le $(($(want_of "$i") - 3)) ]; then
            echo "$i"
            return 0
        fi
    done
    echo "no client on $1 with admissions to come" >&2
    return 1
}

# count_above PORT KEY COUNT: KEY on PORT (read after ASKING) holds a
# number above COUNT.
count_above() {
    local v
    v=$(asking_get "$1" "$2")
    [ -n "$v" ] && [ "$v" -gt "$3" ]
}

# feed_until_grown PORT KEY COUNT: feed the traffic, 6 requests at a
# time, until count_above PORT KEY COUNT; fails when the plan runs out
# first.
feed_until_grown() {
    until count_above "$@"; do
        if [ "$FED" -ge "$PLANNED" ]; then
            traffic_wait 0
            count_above "$@" && return 0
            echo "$2 on $1 never went above $3; answers:" \
                "$(cut -d' ' -f1 "$T/record" | sort | uniq -c | tr '\n' ' ')" >&2
            return 1
        fi
        traffic_feed 6
        traffic_wait 3
    done
}

# slot_owners SLOT...: the port of each SLOT's master, one a line, from
# one view of the slot map (as slot_port).
slot_owners() {
    cluster_nodes | awk -v want="$*" '$3 ~ /master/ && $3 !~ /fail/ {
        for (i = 6; i <= NF; i++) {
            if ($i ~ /^\[/) continue
            n = split($i, r, "-"); hi = (n > 1 ? r[2] : r[1]) + 0
            for (s = r[1] + 0; s <= hi; s++) owner[s] = $2
        } }
        END { n = split(want, w, " "); for (i = 1; i <= n; i++) print owner[w[i]] }'
}

# redirects KIND: the KIND (ASK or MOVED) redirections the live nodes have
# answered since they started (INFO errorstats).
redirects() {
    local p n sum=0
    for p in $(cluster_live); do
        n=$(ccli "$p" INFO errorstats | tr -d '\r' | sed -n "s/^errorstat_$1:count=//p")
        sum=$((sum + ${n:-0}))
    done
    echo "$sum"
}

@test "cluster: slots holding live keys resharded while traffic flows: every answer 200 or 429, every count exact, ASK and MOVED followed" {
    command -v lighttpd >/dev/null || skip "lighttpd is not installed"
    local c i j s u key from to v0 v1 ask0 moved0 urls=() masters=() slots=() ports=()
    CLIENT_SLOT=() CLIENT_PORT=() MOVED_AT=() MOVED_FROM=()
    www_setup
    # Per request (setenv): the client is its X-Api-Key, RESHARD_LIMIT in
    # a window longer than the test, and a failure is a 503.
    # shellcheck disable=SC2034 # read by lighttpd_start
    LT_EXTRA='server.modules += ( "mod_setenv" )
setenv.add-environment = ( "RATELIMIT_KEY" => "header:X-Api-Key",
  "RATELIMIT_LIMIT" => "'$RESHARD_LIMIT'", "RATELIMIT_WINDOW" => "10m",
  "RATELIMIT_FAIL" => "closed" )'
    for i in 1 2; do
        lighttpd_start_host "$T/web$i" 50-fcgi-ratelimit.conf
    done
    for u in "${LT_URLS[@]}"; do urls+=("$u/cgi-bin/ok.cgi"); done
    reshard_plan "${urls[@]}"
    mapfile -t slots < <(for ((i = 1; i <= RESHARD_CLIENTS; i++)); do
        echo "CLUSTER KEYSLOT $(header_key "key-$i")"
    done | ccli "$(cluster_seed)")
    mapfile -t ports < <(slot_owners "${slots[@]}")
    # The clients' keys are on the 3 masters.
    assert_equal "$(printf '%s\n' "${ports[@]}" | grep -c .)" "$RESHARD_CLIENTS"
    assert_equal "$(printf '%s\n' "${ports[@]}" | sort -u | wc -l)" 3
    for ((i = 1; i <= RESHARD_CLIENTS; i++)); do
        CLIENT_SLOT[i]=${slots[i - 1]} CLIENT_PORT[i]=${ports[i - 1]}
    done
    mapfile -t masters < <(cluster_masters)
    assert_equal "${#masters[@]}" 3
    ask0=$(redirects ASK) moved0=$(redirects MOVED)
    traffic_start 6
    traffic_feed 30
    # Two slots off each master, to the next one, each while requests
    # flow: IMPORTING and MIGRATING, the keys MIGRATEd, then requests until
    # the moved client's count grew on the target, which only a request
    # sent there after ASK can do (the source owns the slot, the target
    # answers MOVED without ASKING); then SETSLOT NODE, and the workers'
    # maps are stale: MOVED.
    for j in 0 1 2 3 4 5; do
        from=${masters[j % 3]} to=${masters[(j + 1) % 3]}
        traffic_feed 6
        i=$(pick_client "$from")
        s=${CLIENT_SLOT[i]} key=$(header_key "key-$i")
        slot_migrate_begin "$s" "$from" "$to"
        slot_migrate_keys "$s" "$from" "$to"
        v0=$(asking_get "$to" "$key")
        feed_until_grown "$to" "$key" "$v0"
        slot_migrate_end "$s" "$to"
        v1=$(ccli "$to" GET "$key")
        traffic_feed 6
        retry 100 0.1 slot_owned_everywhere "$s" "$to"
        for ((c = 1; c <= RESHARD_CLIENTS; c++)); do
            [ "${CLIENT_SLOT[c]}" != "$s" ] || CLIENT_PORT[c]=$to
        done
        MOVED_AT[i]=$v1 MOVED_FROM[i]=$from
        echo "# slot $s (key-$i): $from -> $to, count $v0 moved," \
            "$v1 at SETSLOT NODE, $FED requests sent" >&3
    done
    traffic_end
    echo "# redirections: ASK $(($(redirects ASK) - ask0))," \
        "MOVED $(($(redirects MOVED) - moved0))" >&3
    # One answer per request, each 200 or 429: nothing failed (closed).
    assert_equal "$(wc -l <"$T/record")" "$PLANNED"
    run awk '$1 != 200 && $1 != 429' "$T/record"
    assert_output ""
    # The nodes did redirect the filter (the test's own commands never
    # are): an ASK at least per moved slot, and MOVED.
    [ $(($(redirects ASK) - ask0)) -ge 6 ]
    [ $(($(redirects MOVED) - moved0)) -ge 1 ]
    # The moved slots: on the target, nothing left on the source, and
    # admissions after SETSLOT NODE, when the workers' maps were stale.
    assert_equal "${#MOVED_AT[@]}" 6
    for i in "${!MOVED_AT[@]}"; do
        assert_equal "$(slot_port "${CLIENT_SLOT[i]}")" "${CLIENT_PORT[i]}"
        assert_equal "$(ccli "${MOVED_FROM[i]}" CLUSTER COUNTKEYSINSLOT "${CLIENT_SLOT[i]}")" 0
        [ "${MOVED_AT[i]}" -lt "$(want_of "$i")" ]
    done
    # Per client: min(limit, sent) admitted, that count on its slot's
    # owner (any other master would answer MOVED).
    for ((i = 1; i <= RESHARD_CLIENTS; i++)); do
        key=$(header_key "key-$i")
        assert_equal "$(grep -c "=key-$i\$" "$T/record")" "$(reqs_of "$i")"
        assert_equal "$(grep -c "^200 .*=key-$i\$" "$T/record")" "$(want_of "$i")"
        assert_equal "$(ccli "${CLIENT_PORT[i]}" GET "$key")" "$(want_of "$i")"
    done
}

@test "cluster: SCRIPT FLUSH on every node: the script is loaded again, limits stay exact on all 3 masters" {
    declare -A client_of
    # One client per master.
    for i in $(seq 50); do
        p=$(key_port "$(ip_key "10.9.0.$i")")
        [ -n "${client_of[$p]:-}" ] || client_of[$p]="10.9.0.$i"
        [ "${#client_of[@]}" -lt 3 ] || break
    done
    assert_equal "${#client_of[@]}" 3
    fcgi_start 1
    # A first request each: the worker's script is loaded on every master.
    for p in "${!client_of[@]}"; do
        run fcgi_req "REMOTE_ADDR=${client_of[$p]}" </dev/null
        assert_equal "$(status_of)" 200
    done
    for p in "${CLUSTER_PORTS[@]}"; do
        ccli "$p" SCRIPT FLUSH | grep -qx OK
    done
    # NOSCRIPT on every master: loaded again, the answers still exact.
    for p in "${!client_of[@]}"; do
        for want in 200 200 429; do
            run fcgi_req "REMOTE_ADDR=${client_of[$p]}" </dev/null
            assert_equal "$(status_of)" "$want"
        done
        assert_equal "$(ccli "$p" GET "$(ip_key "${client_of[$p]}")")" 3
    done
    # And for new processes (plain CGI) after another flush.
    for p in "${CLUSTER_PORTS[@]}"; do
        ccli "$p" SCRIPT FLUSH | grep -qx OK
    done
    for p in "${!client_of[@]}"; do
        run cgi_run "REMOTE_ADDR=${client_of[$p]}" </dev/null
        assert_equal "$(status_of)" 429
        assert_equal "$(ccli "$p" GET "$(ip_key "${client_of[$p]}")")" 3
    done
}

@test "cluster: a master killed: once its replica is promoted the same worker limits again, the count going on from the replica's copy" {
    export RATELIMIT_FAIL=open
    fcgi_start 1
    worker=$(fcgi_pids)
    key=$(ip_key 127.0.0.1)
    req_expect 200 200
    m=$(key_port "$key")
    r=$(replica_of "$m")
    [ -n "$r" ]
    retry 50 0.1 replica_has "$r" "$key" 2
    cluster_kill "$m"
    retry 300 0.1 cluster_failed_over "$m" "$r"
    assert_equal "$(key_port "$key")" "$r"
    # Until the worker has found the new master it fails open (200, no
    # RateLimit headers, nothing counted); then it limits again.
    limited=
    for ((i = 0; i < 100; i++)); do
        run fcgi_req </dev/null
        assert_equal "$(status_of)" 200
        if [ -n "$(header_of X-RateLimit-Remaining)" ]; then
            limited=1
            break
        fi
        sleep 0.1
    done
    [ -n "$limited" ]
    echo "# limited again at request $((i + 1)) after the failover" >&3
    # 2 counted before the kill, kept by the replica: this one is the 3rd.
    assert_equal "$(header_of X-RateLimit-Remaining)" 0
    assert_equal "$(ccli "$r" GET "$key")" 3
    req_expect 429
    assert_equal "$(ccli "$r" GET "$key")" 3
    assert_equal "$(fcgi_pids)" "$worker"
}

@test "cluster: nodes that require a password: the URL's password; without it --check fails; the script never sees it" {
    key=$(ip_key 127.0.0.1)
    cluster_requirepass cl-secret-3
    run check_run
    assert_failure
    export RATELIMIT_REDIS_URL="redis+cluster://:cl-secret-3@${CLUSTER_URL#redis+cluster://}"
    run check_run
    assert_success
    assert_output --partial "cluster: 3 masters, all 16384 slots covered"
    export RATELIMIT_BACKEND="$FIXTURES/cgi/env.sh"
    for want in 200 200 200; do
        run cgi_run </dev/null
        assert_equal "$(status_of)" "$want"
        refute_output --partial cl-secret-3
    done
    run cgi_run </dev/null
    assert_equal "$(status_of)" 429
    assert_equal "$(cluster_get "$key")" 3
    ! grep -q cl-secret-3 "$T/stderr"
}

@test "cluster: the README's ACL user on every node (+cluster|slots +asking): --check, limits; without +cluster|slots --check says what is missing" {
    local p
    readme_acl_user acl-pw-3
    check_then_limit
    for p in "${CLUSTER_PORTS[@]}"; do
        ccli "$p" ACL SETUSER ratelimit '-cluster|slots' | grep -qx OK
    done
    run check_run
    assert_failure
    assert_output --partial "CLUSTER SLOTS"
    assert_output --partial "ACL permission missing"
}

@test "cluster: rules keyed by different identities, on different masters: a request denied by one rule is charged to none, every algorithm (README's ACL user)" {
    local algo ipa=127.0.0.1 ipb apikey k ka kb kk before_k before_b n=0
    readme_acl_user acl-pw-4
    for algo in fixed-window sliding-window sliding-log token-bucket; do
        n=$((n + 1))
        export RATELIMIT_RULES="ip$n ip 3/1h $algo; key$n header:X-Api-Key 5/1h $algo"
        ka=$(ip_key "$ipa" "ip$n")
        # an API key whose counter lives on another master than ipa's,
        # and a second address on another master than that API key's
        for k in $(seq 1 60); do
            [ "$(key_port "$(header_key "key-$k" "key$n")")" != "$(key_port "$ka")" ] && break
        done
        apikey="key-$k"
        kk=$(header_key "$apikey" "key$n")
        for k in $(seq 2 60); do
            ipb="10.0.0.$k"
            [ "$(key_port "$(ip_key "$ipb" "ip$n")")" != "$(key_port "$kk")" ] && break
        done
        kb=$(ip_key "$ipb" "ip$n")
        [ "$(key_port "$ka")" != "$(key_port "$kk")" ]
        [ "$(key_port "$kb")" != "$(key_port "$kk")" ]
        # ipa: 3 admitted (both rules charged); the 4th is denied by its
        # address's rule: what the API key's rule was charged is given back
        for k in 1 2 3; do assert_equal "$(req_as "$ipa" "$apikey")" 200; done
        before_k=$(key_state "$kk")
        [ "$before_k" != none ]
        assert_equal "$(req_as "$ipa" "$apikey")" 429
        echo "$algo: API key's counter $before_k, then $(key_state "$kk")" >&2
        same_state "$before_k" "$(key_state "$kk")"
        # ipb: 2 admitted, and the API key has had its 5; the next is denied
        # by the API key's rule: what ipb's rule was charged is given back
        for k in 1 2; do assert_equal "$(req_as "$ipb" "$apikey")" 200; done
        before_b=$(key_state "$kb")
        assert_equal "$(req_as "$ipb" "$apikey")" 429
        echo "$algo: $ipb's counter $before_b, then $(key_state "$kb")" >&2
        same_state "$before_b" "$(key_state "$kb")"
        if [ "$algo" = fixed-window ]; then
            assert_equal "$(key_state "$ka")" 3
            assert_equal "$(key_state "$kb")" 2
            assert_equal "$(key_state "$kk")" 5
        fi
        # a fresh address with the exhausted API key: denied, and its
        # address's rule holds nothing (its new counter was taken back)
        assert_equal "$(req_as 10.9.9.9 "$apikey")" 429
        assert_equal "$(key_state "$(ip_key 10.9.9.9 "ip$n")")" none
    done
    run cat "$T/stderr"
    refute_output --partial "could not be given back"
}

# bucket_state RULE KIND VALUE: the buckets store's state of that client
# under RULE, read on the master of its hashes' slot: its field in the
# newest of its bucket hashes that holds one, or "none".
bucket_state() {
    local h hk port k v best=none bestn=-1 n
    h=$(id_hash "$2" "$3")
    hk="ratelimit:$1:{${h:0:3}}"
    port=$(key_port "$hk")
    for k in $(ccli "$port" --scan --pattern "$hk:*"); do
        v=$(ccli "$port" HGET "$k" "${h:3}")
        n=${k##*:}
        if [ -n "$v" ] && [ "$n" -gt "$bestn" ]; then
            best=$v bestn=$n
        fi
    done
    echo "$best"
}

# near: two bucket_state words are the same counter or, for a token
# bucket's tat given back, the same time within 1 us.
near() {
    if [ "$1" = none ] || [ "$2" = none ]; then
        [ "$1" = "$2" ]
    else
        awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; exit !(d < 1 && d > -1) }'
    fi
}

@test "cluster: the buckets store, every algorithm it takes (README's ACL user): exact limits, hashes on their slot's master, a denied request charged to none" {
    local algo n=0 ipa=127.0.0.1 ipb apikey k ha hk hb before
    readme_acl_user acl-pw-5
    export RATELIMIT_STORE=buckets
    run check_run
    assert_success
    assert_output --partial "cluster: 3 masters, all 16384 slots covered"
    for algo in fixed-window sliding-window token-bucket; do
        n=$((n + 1))
        export RATELIMIT_RULES="ip$n ip 3/1h $algo; key$n header:X-Api-Key 5/1h $algo"
        # bucket hashes are tagged by the first 3 hex digits of the hash:
        # an API key whose hashes are on another master than ipa's, and a
        # second address on another master than that API key's
        ha=$(id_hash ip "$ipa")
        for k in $(seq 1 80); do
            hk=$(id_hash header "key-$k")
            [ "$(key_port "{${hk:0:3}}")" != "$(key_port "{${ha:0:3}}")" ] && break
        done
        apikey="key-$k"
        for k in $(seq 2 80); do
            ipb="10.0.0.$k"
            hb=$(id_hash ip "$ipb")
            [ "$(key_port "{${hb:0:3}}")" != "$(key_port "{${hk:0:3}}")" ] && break
        done
        [ "$(key_port "{${ha:0:3}}")" != "$(key_port "{${hk:0:3}}")" ]
        [ "$(key_port "{${hb:0:3}}")" != "$(key_port "{${hk:0:3}}")" ]
        # ipa: 3 admitted; the 4th denied by its address's rule, and the
        # API key's rule (another master) given back its charge
        for k in 1 2 3; do assert_equal "$(req_as "$ipa" "$apikey")" 200; done
        before=$(bucket_state "key$n" header "$apikey")
        [ "$before" != none ]
        assert_equal "$(req_as "$ipa" "$apikey")" 429
        echo "$algo: API key's field $before, then $(bucket_state "key$n" header "$apikey")" >&2
        near "$before" "$(bucket_state "key$n" header "$apikey")"
        # ipb: 2 admitted, the API key has had its 5: the next is denied by
        # the API key's rule, and ipb's charge given back
        for k in 1 2; do assert_equal "$(req_as "$ipb" "$apikey")" 200; done
        before=$(bucket_state "ip$n" ip "$ipb")
        assert_equal "$(req_as "$ipb" "$apikey")" 429
        near "$before" "$(bucket_state "ip$n" ip "$ipb")"
        if [ "$algo" != token-bucket ]; then
            assert_equal "$(bucket_state "ip$n" ip "$ipa")" 3
            assert_equal "$(bucket_state "ip$n" ip "$ipb")" 2
            assert_equal "$(bucket_state "key$n" header "$apikey")" 5
        fi
        # a fresh address with the exhausted API key: denied, its field gone
        assert_equal "$(req_as 10.9.9.9 "$apikey")" 429
        assert_equal "$(bucket_state "ip$n" ip 10.9.9.9)" none
    done
    # every hash is on the master of its slot: no node holds a key of
    # a slot it does not serve
    for k in $(cluster_masters); do
        for hk in $(ccli "$k" --scan --pattern 'ratelimit:*'); do
            assert_equal "$(key_port "$hk")" "$k"
        done
    done
    run cat "$T/stderr"
    refute_output --partial "could not be given back"
}

# shadow_state RULE KIND VALUE: that client's counter under RULE in the
# current store: key_state of its key, or bucket_state of its field.
shadow_state() {
    if [ "${RATELIMIT_STORE:-keys}" = buckets ]; then
        bucket_state "$@"
    else
        key_state "$(rl_key "$2" "$3" "$1")"
    fi
}

# shadow_route RULE KIND VALUE: a key in the slot of that client's
# counter under RULE in the current store.
shadow_route() {
    local h
    if [ "${RATELIMIT_STORE:-keys}" = buckets ]; then
        h=$(id_hash "$2" "$3")
        echo "{${h:0:3}}"
    else
        rl_key "$2" "$3" "$1"
    fi
}

@test "cluster: a shadow rule and a real one on different masters: past its limit the shadow rule admits and is not charged, nor refunded when the real one denies (keys and buckets)" {
    local store ipa=127.0.0.1 ipb apikey k n=0
    for store in keys buckets; do
        n=$((n + 1))
        export RATELIMIT_STORE=$store
        export RATELIMIT_RULES="probe$n ip 2/1h shadow; api$n header:X-Api-Key 4/1h"
        # an API key whose counter is on another master than ipa's probe
        # counter, and a second address on another master than the API key's
        for k in $(seq 1 80); do
            apikey="key-$n-$k"
            [ "$(key_port "$(shadow_route "api$n" header "$apikey")")" != \
                "$(key_port "$(shadow_route "probe$n" ip "$ipa")")" ] && break
        done
        for k in $(seq 2 80); do
            ipb="10.0.$n.$k"
            [ "$(key_port "$(shadow_route "probe$n" ip "$ipb")")" != \
                "$(key_port "$(shadow_route "api$n" header "$apikey")")" ] && break
        done
        [ "$(key_port "$(shadow_route "api$n" header "$apikey")")" != \
            "$(key_port "$(shadow_route "probe$n" ip "$ipa")")" ]
        [ "$(key_port "$(shadow_route "probe$n" ip "$ipb")")" != \
            "$(key_port "$(shadow_route "api$n" header "$apikey")")" ]
        : >"$T/stderr"
        # 2 within probe's limit, 2 past it: all admitted, probe stays at 2
        for k in 1 2 3 4; do
            run cgi_run REMOTE_ADDR="$ipa" HTTP_X_API_KEY="$apikey" </dev/null
            assert_equal "$(status_of)" 200
            refute_output --partial "probe$n"
            assert_equal "$(header_of RateLimit-Policy)" "\"api$n\";q=4;w=3600"
            assert_equal "$(shadow_state "probe$n" ip "$ipa") $(shadow_state "api$n" header "$apikey")" \
                "$((k < 2 ? k : 2)) $k"
        done
        assert_equal "$(grep -c "shadow: would deny client $ipa: rule probe$n " "$T/stderr")" 2
        # the real rule denies: probe, over its limit, was not charged, so
        # nothing of it is given back (it stays at 2)
        run cgi_run REMOTE_ADDR="$ipa" HTTP_X_API_KEY="$apikey" </dev/null
        assert_equal "$(status_of)" 429
        assert_equal "$(json_field policy)" "api$n"
        refute_output --partial "probe$n"
        assert_equal "$(shadow_state "probe$n" ip "$ipa") $(shadow_state "api$n" header "$apikey")" "2 4"
        # a second address within probe's limit, the API key exhausted:
        # probe's charge is given back (none left), the API key unchanged
        assert_equal "$(req_as "$ipb" "$apikey")" 429
        assert_equal "$(shadow_state "probe$n" ip "$ipb") $(shadow_state "api$n" header "$apikey")" "none 4"
        assert_equal "$(grep -c "shadow:" "$T/stderr")" 2
    done
    run cat "$T/stderr"
    refute_output --partial "could not be given back"
}
