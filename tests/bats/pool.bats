#!/usr/bin/env bats
# pool.bats - nobody can hold or kill the worker pool: connections that
# stall before their request is whole, peers outside FCGI_WEB_SERVER_ADDRS,
# and malformed FastCGI params (the record that makes libfcgi abort).

load lib/load

setup() {
    redis_start
    export RATELIMIT_LIMIT=100000
    LPID=
    STALLERS=()
}

teardown() {
    local p
    for p in "${STALLERS[@]}"; do kill "$p" 2>/dev/null || true; done
    listen_stop
    redis_stop
}

# stallers SOCKET N BYTES: N clients that send BYTES of their request's
# head and then nothing; their PIDs in STALLERS, their exit codes (0: the
# filter hung up on them) in $T/stall.N. Returns once all N are connected
# and have sent their bytes (so the real requests come after them).
stallers() {
    local i
    for ((i = 0; i < $2; i++)); do
        (FCGI_SOCK="$1" fcgi_req -s "$3" </dev/null >"$T/stalled.$3.$i"
            echo $? >"$T/stall.$3.$i") &
        STALLERS+=($!)
    done
    retry 600 0.05 stalled "$3" "$2" && return 0
    echo "only $(cat "$T"/stalled."$3".* | grep -c stalled) of $2 stallers connected" >&2
    return 1
}

# stalled BYTES N: N stallers of BYTES have sent their bytes.
stalled() {
    [ "$(cat "$T"/stalled."$1".* 2>/dev/null | grep -c '^stalled$')" -ge "$2" ]
}

# authz SOCKET: one Authorizer request, bounded by timeout; its answer in
# $output.
authz() {
    FCGI_SOCK="$1"
    run fcgi_req -a </dev/null
}

@test "--workers 2 and 20 stalled connections (silent, and a few bytes): real requests are still answered" {
    listen_start "unix:$T/p.sock" --workers 2
    stallers "$T/p.sock" 10 0
    stallers "$T/p.sock" 10 12
    for i in 1 2 3 4 5; do
        authz "$T/p.sock"
        assert_success
        assert_equal "$(status_of)" 200
    done
    # Each stalled connection is closed by the filter (its head deadline,
    # 5 s), never left to hold a worker.
    for p in "${STALLERS[@]}"; do wait "$p"; done
    STALLERS=()
    [ "$(cat "$T"/stall.0.* "$T"/stall.12.* | grep -c '^0$')" -eq 20 ]
}

@test "TCP: 20 silent connections do not hold --workers 2" {
    local port
    port=$(free_port)
    listen_start "127.0.0.1:$port" --workers 2
    stallers "127.0.0.1:$port" 20 0
    for i in 1 2 3; do
        authz "127.0.0.1:$port"
        assert_success
        assert_equal "$(status_of)" 200
    done
}

@test "a params record whose lengths overflow libfcgi is dropped; the worker lives on and says why once" {
    listen_start "unix:$T/p.sock" --workers 1
    local w
    w=$(workers)
    FCGI_SOCK="$T/p.sock"
    run fcgi_req -m </dev/null
    assert_equal "$status" 4 # closed before END_REQUEST
    authz "$T/p.sock"
    assert_success
    assert_equal "$(status_of)" 200
    # The same worker: libfcgi never saw the record, so it did not abort.
    assert_equal "$(workers)" "$w"
    [ "$(grep -c 'FastCGI connection dropped: malformed or oversized params' "$T/listen.log")" -eq 1 ]
}

@test "FCGI_WEB_SERVER_ADDRS: a TCP peer outside the list is hung up on at once, IPv4 and IPv6" {
    local port
    port=$(free_port)
    FCGI_WEB_SERVER_ADDRS=127.0.0.2 listen_start "[::1]:$port" --workers 1
    authz "[::1]:$port"
    assert_failure 4
    grep -q 'FastCGI connection from ::1 refused: not in FCGI_WEB_SERVER_ADDRS' "$T/listen.log"
    kill "$LPID"
    wait "$LPID" || true
    port=$(free_port)
    FCGI_WEB_SERVER_ADDRS=127.0.0.2 listen_start "127.0.0.1:$port" --workers 1
    authz "127.0.0.1:$port"
    assert_failure 4
    grep -q 'FastCGI connection from 127.0.0.1 refused' "$T/listen.log"
}

@test "FCGI_WEB_SERVER_ADDRS: loopback is served by default, a listed peer is served" {
    local port
    port=$(free_port)
    listen_start "[::1]:$port" --workers 1
    authz "[::1]:$port"
    assert_success
    assert_equal "$(status_of)" 200
    kill "$LPID"
    wait "$LPID" || true
    port=$(free_port)
    FCGI_WEB_SERVER_ADDRS="10.1.2.3, 127.0.0.1" listen_start "127.0.0.1:$port" --workers 1
    authz "127.0.0.1:$port"
    assert_success
    assert_equal "$(status_of)" 200
}

@test "a worker started by the web server (fd 0) is guarded the same way" {
    fcgi_start 1
    # On a unix socket libfcgi was only ever held by a head begun and not
    # finished (a silent connection it gave up on); on TCP by silence too.
    stallers "$FCGI_SOCK" 5 12
    authz "$FCGI_SOCK"
    assert_success
    assert_equal "$(status_of)" 200
    run fcgi_req -m </dev/null
    assert_equal "$status" 4
    authz "$FCGI_SOCK"
    assert_equal "$(status_of)" 200
    fcgi_stop
}

@test "a worker that aborts (as libfcgi does on some malformed records) is replaced, logged once" {
    listen_start "unix:$T/p.sock" --workers 1
    local w n
    w=$(workers)
    kill -ABRT "$w"
    for ((i = 0; i < 200; i++)); do
        n=$(workers)
        [ -n "$n" ] && [ "$n" != "$w" ] && break
        sleep 0.05
    done
    [ -n "$n" ] && [ "$n" != "$w" ]
    authz "$T/p.sock"
    assert_equal "$(status_of)" 200
    [ "$(grep -c "worker $w killed by signal 6 (libfcgi aborts on some malformed FastCGI records)" "$T/listen.log")" -eq 1 ]
}

@test "a peer that stops reading the answer is dropped at the script's deadline, and the script killed" {
    export RATELIMIT_BACKEND_TIMEOUT=2
    fcgi_start 1
    local w
    w=$(fcgi_pids)
    # 50 MB of answer to a client that reads none of it: the worker blocks
    # in write() until the deadline breaks it.
    (fcgi_req -z SCRIPT_FILENAME="$FIXTURES/cgi/big.sh" QUERY_STRING=50 </dev/null >/dev/null) &
    STALLERS+=($!)
    # big.sh runs: the worker is busy with the deaf peer
    wait_child "$w"
    authz "$FCGI_SOCK"
    assert_success
    assert_equal "$(status_of)" 200
    # The same worker, and big.sh's group is gone (no child left).
    assert_equal "$(fcgi_pids)" "$w"
    [ -z "$(children_of "$w")" ]
    fcgi_stop
}

@test "FCGI_KEEP_CONN: several requests on one kept connection, and an idle kept connection holds no worker" {
    listen_start "unix:$T/p.sock" --workers 1
    FCGI_SOCK="$T/p.sock"
    run fcgi_req -k 3 SCRIPT_FILENAME="$FIXTURES/cgi/ok.cgi" </dev/null
    assert_success
    [ "$(printf '%s\n' "$output" | grep -c 'ok 127.0.0.1')" -eq 3 ]
    # A kept connection that sends nothing more must not hold the one
    # worker: 12 bytes of a head (a kept connection's next request,
    # begun and stalled) and a silent one, then a real request.
    stallers "$FCGI_SOCK" 1 12
    authz "$FCGI_SOCK"
    assert_success
    assert_equal "$(status_of)" 200
}
