#!/usr/bin/env bats
# sentinel.bats - RATELIMIT_REDIS_URL=redis+sentinel://...: a real master,
# its replica and three real sentinels on loopback ports (lib/redis.bash
# sentinel_start). The filter asks the sentinels where the master is,
# checks it with ROLE, and asks again after a failover; every server is
# stopped by its PID.

load lib/load

setup() {
    sentinel_start
    export RATELIMIT_REDIS_URL="$SENTINEL_URL"
    export RATELIMIT_BACKEND="$FIXTURES/cgi/ok.cgi"
    export RATELIMIT_LIMIT=3 RATELIMIT_WINDOW=1m
    export RATELIMIT_REDIS_TIMEOUT_MS=2000
    LT_PID=
}

teardown() {
    lighttpd_stop
    kill_leftovers
    sentinel_stop
}

# master_get KEY: the key's value on the master (the server on $T/master.sock).
master_get() {
    rcli_at "$T/master.sock" GET "$1"
}

# replica_holds KEY VALUE: the replica ($T/replica.sock) has KEY = VALUE.
replica_holds() {
    [ "$(rcli_at "$T/replica.sock" GET "$1")" = "$2" ]
}

# check_then_limit: --check passes; plain CGI requests of 127.0.0.1 get
# 3 x 200 then 429, the count 3 on the master.
check_then_limit() {
    local want
    run check_run
    assert_success
    for want in 200 200 200 429; do
        run cgi_run </dev/null
        assert_equal "$(status_of)" "$want"
    done
    assert_equal "$(master_get "$(ip_key 127.0.0.1)")" 3
}

@test "sentinel: the master they name is used, limits are exact, --check names it" {
    run check_run
    assert_success
    assert_output --partial "sentinel"
    assert_output --partial "master 'mymaster' at 127.0.0.1:$MASTER_PORT"
    for want in 200 200 200 429 429; do
        run cgi_run </dev/null
        assert_equal "$(status_of)" "$want"
    done
    assert_equal "$(master_get "$(ip_key 127.0.0.1)")" 3
    # The replica has it too: the count lives on the master.
    retry 50 0.1 replica_holds "$(ip_key 127.0.0.1)" 3
}

@test "sentinel: a dead sentinel first in the list is passed over" {
    dead=$(free_port)
    export RATELIMIT_REDIS_URL="redis+sentinel://127.0.0.1:$dead,${SENTINEL_URL#redis+sentinel://}"
    check_then_limit
}

@test "sentinel: a master name the sentinels do not know: --check says so, requests follow RATELIMIT_FAIL" {
    export RATELIMIT_REDIS_URL="${SENTINEL_URL%/mymaster}/nosuch"
    run check_run
    assert_failure
    assert_output --partial "know no master named 'nosuch'"
    RATELIMIT_FAIL=closed run cgi_run </dev/null
    assert_equal "$(status_of)" 503
    refute_output --partial "ok 127.0.0.1"
    grep -q "know no master named 'nosuch'" "$T/stderr"
    RATELIMIT_FAIL=open run cgi_run </dev/null
    assert_equal "$(status_of)" 200
}

@test "sentinel: no sentinel reachable: --check fails naming them, a request fails closed" {
    export RATELIMIT_REDIS_URL="redis+sentinel://127.0.0.1:$(free_port)/mymaster"
    run check_run
    assert_failure
    assert_output --partial "no sentinel of 1 named the master"
    assert_output --partial "connect"
    RATELIMIT_FAIL=closed run cgi_run </dev/null
    assert_equal "$(status_of)" 503
}

@test "sentinel: a server the sentinels name that is not the master is refused (ROLE)" {
    # One sentinel made to name the replica, as a stale sentinel would.
    p=${SENTINEL_PORTS[0]}
    scli "$p" SENTINEL REMOVE mymaster | grep -qx OK
    scli "$p" SENTINEL MONITOR mymaster 127.0.0.1 "$REPLICA_PORT" 2 | grep -qx OK
    export RATELIMIT_REDIS_URL="redis+sentinel://127.0.0.1:$p/mymaster"
    run check_run
    assert_failure
    assert_output --partial "ROLE: 127.0.0.1:$REPLICA_PORT is not the master"
    RATELIMIT_FAIL=closed run cgi_run </dev/null
    assert_equal "$(status_of)" 503
    assert_equal "$(rcli_at "$T/replica.sock" DBSIZE)" 0
}

@test "sentinel: sentinels that require a password: RATELIMIT_SENTINEL_PASSWORD, never seen by the script" {
    sentinel_stop
    SENTINEL_REQUIREPASS=sentinel-secret-1 sentinel_start
    export RATELIMIT_REDIS_URL="$SENTINEL_URL"
    run check_run
    assert_failure
    assert_output --partial "requires a password: set RATELIMIT_SENTINEL_PASSWORD"
    export RATELIMIT_SENTINEL_PASSWORD=sentinel-secret-1
    run check_run
    assert_success
    assert_output --partial "master 'mymaster' at 127.0.0.1:$MASTER_PORT"
    export RATELIMIT_BACKEND="$FIXTURES/cgi/env.sh"
    run cgi_run </dev/null
    assert_equal "$(status_of)" 200
    refute_output --partial sentinel-secret-1
    refute_output --partial RATELIMIT_SENTINEL_PASSWORD
    ! grep -q sentinel-secret-1 "$T/stderr"
}

@test "sentinel: the README's ACL user on the master (+role): limits; without +role --check says what is missing" {
    local line
    line=$(grep -m1 '^ACL SETUSER ratelimit ' "$RL_SRCDIR/README.md")
    line=${line/>PASSWORD/>acl-pw-2}
    # ACL users are not replicated: the admin creates it on every server.
    for s in master replica; do
        # shellcheck disable=SC2086 # the line is words; set -f keeps ~ratelimit:*
        (set -f; rcli_at "$T/$s.sock" $line) | grep -qx OK
    done
    export RATELIMIT_REDIS_URL="redis+sentinel://ratelimit:acl-pw-2@${SENTINEL_URL#redis+sentinel://}"
    check_then_limit
    rcli_at "$T/master.sock" ACL SETUSER ratelimit -role | grep -qx OK
    run check_run
    assert_failure
    assert_output --partial "ROLE"
    assert_output --partial "ACL permission missing"
}

@test "sentinel: failover under traffic through lighttpd: limits resume on the new master, nothing restarted, logged once per worker" {
    command -v lighttpd >/dev/null || skip "lighttpd is not installed"
    www_setup
    PORT=$(free_port)
    BASE="http://127.0.0.1:$PORT"
    lighttpd_start 50-fcgi-ratelimit.conf
    key=$(ip_key 127.0.0.1)
    expect_n_ok 10 "$BASE/cgi-bin/ok.cgi"
    assert_equal "$(master_get "$key")" 10
    retry 50 0.1 replica_holds "$key" 10
    pids_before=$(pgrep -P "$LT_PID" | sort | tr '\n' ' ')
    # The master dies under traffic; requests keep coming, one every 50 ms.
    kill -9 "${SENTINEL_SERVER_PIDS[0]}"
    t_kill=$(date +%s%3N)
    limited_at=
    for ((i = 0; i < 600; i++)); do
        http "$BASE/cgi-bin/ok.cgi"
        [ "$(http_status)" = 200 ]
        if [ -n "$(header_of X-RateLimit-Remaining)" ]; then
            limited_at=$(date +%s%3N)
            break
        fi
        sleep 0.05
    done
    [ -n "$limited_at" ]
    # The sentinels name the old replica now, and that is where we count.
    assert_equal "$(sentinel_master "${SENTINEL_PORTS[0]}")" "127.0.0.1 $REPLICA_PORT"
    before=$(rcli_at "$T/replica.sock" GET "$key")
    expect_n_ok 5 "$BASE/cgi-bin/ok.cgi"
    assert_equal "$(rcli_at "$T/replica.sock" GET "$key")" $((before + 5))
    # Nothing was restarted: the same four filter processes.
    assert_equal "$(pgrep -P "$LT_PID" | sort | tr '\n' ' ')" "$pids_before"
    # The outage was logged once per worker that saw it, not per request.
    n=$(grep -c "unreachable" "$T/lighttpd-error.log" || true)
    [ "$n" -ge 1 ]
    [ "$n" -le 4 ]
    grep -q "master 'mymaster' is at 127.0.0.1:$REPLICA_PORT" "$T/lighttpd-error.log"
    echo "# sentinel failover: limited again $((limited_at - t_kill)) ms after the master died" >&3
}
