#!/usr/bin/env bats
# cluster.bats - RATELIMIT_REDIS_URL=redis+cluster://...: a real Redis
# Cluster, 3 masters and 3 replicas on loopback ports (lib/redis.bash
# cluster_start). The filter learns the slot map from the seed nodes, sends
# each client's key to the master that owns its slot, follows MOVED and ASK
# while a slot migrates, loads its script again after SCRIPT FLUSH and
# finds the promoted replica after a master dies; every server is stopped
# by its PID. The slots are moved with the cli, synchronously, between
# requests: every assertion is about counts and answers, none about time.

load lib/load

setup() {
    cluster_start
    export RATELIMIT_REDIS_URL="$CLUSTER_URL"
    export RATELIMIT_BACKEND="$FIXTURES/cgi/ok.cgi"
    export RATELIMIT_LIMIT=3 RATELIMIT_WINDOW=1m
    export RATELIMIT_REDIS_TIMEOUT_MS=2000
    LT_PIDS=() LT_URLS=() PLAIN_PID=
}

teardown() {
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
