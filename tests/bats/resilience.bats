#!/usr/bin/env bats
# resilience.bats - what happens when things around the filter go wrong:
# a stalled Redis (the circuit breaker), Redis restarts, SCRIPT FLUSH and
# failovers under a real lighttpd, and signals (SIGTERM finishes the
# request in flight and exits 0 in every role; SIGPIPE never kills).
#
# No timing assertions: outcomes, exit codes and counted log lines only.
# Every process is stopped by its PID; a SIGSTOPped Redis gets SIGCONT
# before it is stopped.

load lib/load

CGI="$FIXTURES/cgi"

setup() {
    rl_tmp
    LT_PID=
    W_PID=
    REDIS_STOPPED=
    OLD_REDIS_PIDS=
}

teardown() {
    local p
    if [ -n "${REDIS_STOPPED:-}" ] && [ -n "${REDIS_PID:-}" ]; then
        kill -CONT "$REDIS_PID" 2>/dev/null || true
    fi
    if [ -n "${W_PID:-}" ]; then
        kill -TERM "$W_PID" 2>/dev/null
        wait_gone "$W_PID" 50 || kill -9 "$W_PID" 2>/dev/null
        wait "$W_PID" 2>/dev/null || true
    fi
    lighttpd_stop
    fcgi_stop
    kill_leftovers
    for p in ${OLD_REDIS_PIDS:-}; do
        kill -CONT "$p" 2>/dev/null
        kill "$p" 2>/dev/null
        wait "$p" 2>/dev/null || true
    done
    redis_stop
}

# stall_redis / unstall_redis: Redis keeps accepting connections (the
# kernel queues them) but never answers.
stall_redis() {
    kill -STOP "$REDIS_PID"
    REDIS_STOPPED=1
}
unstall_redis() {
    kill -CONT "$REDIS_PID"
    REDIS_STOPPED=
}

# redis_unread: a line per connection of the private Redis with bytes it
# has not read (sent while it is stopped).
redis_unread() {
    ss -xH state established 2>/dev/null | awk -v p="$REDIS_SOCK" 'index($0, p) && $2 > 0'
}

# addr_re: how the log names the private Redis (unix:///PATH?db=0), as an
# extended regex.
addr_re() {
    echo "unix://+${REDIS_SOCK}[^ ]*"
}

# ---------------------------------------------------------------- (a) stall

@test "stalled Redis, fail closed: one timeout, then 503 at once; one line each way; limits back with no restart" {
    local pid i fast attempts ok=
    export REDIS_REQUIREPASS="pw-$RANDOM-$RANDOM-secret"
    redis_start
    export RATELIMIT_REDIS_PASSWORD="$REDIS_REQUIREPASS"
    export RATELIMIT_REDIS_TIMEOUT_MS=1000 RATELIMIT_FAIL=closed RATELIMIT_LIMIT=5 RATELIMIT_LOG=debug
    export RATELIMIT_BACKEND="$CGI/ok.cgi"
    fcgi_start 1
    pid=$(fcgi_pids)
    run fcgi_req </dev/null
    assert_equal "$(status_of)" 200
    stall_redis
    for i in $(seq 10); do
        run fcgi_req </dev/null
        assert_equal "$(status_of)" 503
        assert_equal "$(header_of Retry-After)" 1
    refute_output --partial "ok 127.0.0.1"
    done
    # The outage is logged once, naming the address and the cause (a slow
    # run may add the breaker's probes: "still unreachable", counted below).
    assert_equal "$(log_count "redis $(addr_re) unreachable: " "$T/fcgi-stderr")" 1
    grep -qE "redis $(addr_re) unreachable: EVALSHA: timed out; failing closed" "$T/fcgi-stderr"
    # Only the first request and the breaker's probes waited for Redis; the
    # rest failed at once ("unavailable ... next try in", no I/O).
    attempts=$((1 + $(log_count 'still unreachable' "$T/fcgi-stderr")))
    fast=$(log_count "redis $(addr_re) unavailable: .*next try in" "$T/fcgi-stderr")
    echo "attempts $attempts, failed at once $fast" >&2
    assert_equal "$((attempts + fast))" 10
    [ "$fast" -ge 6 ]
    # Redis answers again: limits apply within the back-off, same worker.
    unstall_redis
    for i in $(seq 160); do
        run fcgi_req </dev/null
        [ "$(status_of)" = 200 ] && { ok=1; break; }
        assert_equal "$(status_of)" 503
        sleep 0.25
    done
    [ -n "$ok" ]
    assert_equal "$(header_of X-RateLimit-Limit)" 5
    ok=
    for i in $(seq 6); do
        run fcgi_req </dev/null
        [ "$(status_of)" = 429 ] && { ok=1; break; }
    done
    [ -n "$ok" ]
    [ -n "$(json_field ttl)" ]
    assert_equal "$(fcgi_pids)" "$pid"
    assert_equal "$(log_count "redis $(addr_re) unreachable: " "$T/fcgi-stderr")" 1
    assert_equal "$(log_count "redis $(addr_re) is back after [0-9]+ ms" "$T/fcgi-stderr")" 1
    # Never the password, in any log.
    ! grep -rqF "$REDIS_REQUIREPASS" "$T/fcgi-stderr" "$T/fcgi.log"
}

@test "stalled Redis, fail open: the script runs, unlimited and without headers, until Redis answers" {
    local i ok=
    redis_start
    export RATELIMIT_REDIS_TIMEOUT_MS=1000 RATELIMIT_FAIL=open RATELIMIT_LIMIT=3
    export RATELIMIT_BACKEND="$CGI/ok.cgi"
    fcgi_start 1
    run fcgi_req </dev/null
    assert_equal "$(header_of X-RateLimit-Remaining)" 2
    stall_redis
    # More requests than the limit: all admitted, none counted.
    for i in $(seq 6); do
        run fcgi_req </dev/null
        assert_equal "$(status_of)" 200
        assert_output --partial "ok 127.0.0.1"
        assert_equal "$(header_of X-RateLimit-Limit)" ""
    done
    assert_equal "$(log_count 'unreachable' "$T/fcgi-stderr")" 1
    grep -qE "redis $(addr_re) unreachable: .*; failing open" "$T/fcgi-stderr"
    unstall_redis
    for i in $(seq 160); do
        run fcgi_req </dev/null
        [ -n "$(header_of X-RateLimit-Limit)" ] && { ok=1; break; }
        sleep 0.25
    done
    [ -n "$ok" ]
    assert_equal "$(header_of X-RateLimit-Limit)" 3
    assert_equal "$(log_count "redis $(addr_re) is back" "$T/fcgi-stderr")" 1
}

# ------------------------------------------------- (b) outages under lighttpd

# lt_setup MODE: redis, the document root and lighttpd with the shipped
# 50-fcgi-ratelimit.conf; per request (setenv, as 51-fcgi-ratelimit-
# locations.conf does) RATELIMIT_KEY=header:X-Client and, for MODE closed,
# RATELIMIT_FAIL=closed instead of the shipped open.
lt_setup() {
    command -v lighttpd >/dev/null || skip "lighttpd is not installed"
    redis_start
    www_setup
    PORT=$(free_port)
    BASE="http://127.0.0.1:$PORT"
    # Requests without X-Client are counted by IP as before; a new
    # X-Client value is a client no worker has seen (nor cached a denial of).
    LT_EXTRA='server.modules += ( "mod_setenv" )
setenv.add-environment = ( "RATELIMIT_KEY" => "header:X-Client"'
    [ "$1" = closed ] && LT_EXTRA+=', "RATELIMIT_FAIL" => "closed"'
    LT_EXTRA+=' )'
    lighttpd_start 50-fcgi-ratelimit.conf
    expect_n_ok 1 "$BASE/cgi-bin/ok.cgi"
}

# redis_restart: SIGKILL the private Redis and start a fresh, empty one on
# the same socket path.
redis_restart() {
    kill -9 "$REDIS_PID"
    wait "$REDIS_PID" 2>/dev/null || true
    rm -f "$REDIS_SOCK"
    redis_start
}

# redis_failover: a fresh, empty server ($RL_SERVER_BIN) takes over the
# socket path (renamed over the old one) and then the old one dies: existing
# connections break, new ones reach the new server. (SIGKILL: an orderly
# shutdown would unlink the path, now the new server's.)
redis_failover() {
    local old_pid="$REDIS_PID" old_sock="$REDIS_SOCK"
    redis_server REDIS_PID "$T/redis-new.sock"
    mv -f "$T/redis-new.sock" "$old_sock"
    kill -9 "$old_pid"
    wait "$old_pid" 2>/dev/null || true
}

# outage_run MODE: 600 requests, 4 at a time, with a Redis restart, a
# SCRIPT FLUSH and a failover in the middle; every answer must be one that
# RATELIMIT_FAIL=MODE allows.
outage_run() {
    local n=600 at allowed bad workers
    lt_setup "$1"
    workers=$(rl_leftovers | sort)
    : >"$T/codes"
    burst_codes "$BASE/cgi-bin/ok.cgi" "$n" 4 >"$T/codes" &
    local run_pid=$!
    wait_lines "$T/codes" 100
    redis_restart
    wait_lines "$T/codes" 250
    rcli SCRIPT FLUSH
    wait_lines "$T/codes" 400
    redis_failover
    at=$(wc -l <"$T/codes")
    wait "$run_pid"
    # the disruptions happened while requests were still coming
    [ "$at" -lt "$n" ]
    assert_equal "$(wc -l <"$T/codes")" "$n"
    allowed='^(200|429)$'
    [ "$1" = closed ] && allowed='^(200|429|503)$'
    bad=$(grep -vcE "$allowed" "$T/codes" || true)
    sort "$T/codes" | uniq -c >&2
    assert_equal "$bad" 0
    # limits apply again on the new server, with the same worker processes
    local i ok=
    for i in $(seq 160); do
        http -H "X-Client: after-$i" "$BASE/cgi-bin/ok.cgi"
        [ "$(header_of X-RateLimit-Remaining)" = 99 ] && { ok=1; break; }
        sleep 0.25
    done
    [ -n "$ok" ]
    assert_equal "$(rl_leftovers | sort)" "$workers"
    # RATELIMIT_FAIL is the one asked for: with Redis gone, 503 or 200
    redis_stop
    http -H "X-Client: gone" "$BASE/cgi-bin/ok.cgi"
    if [ "$1" = closed ]; then
        assert_equal "$(http_status)" 503
        assert_equal "$(header_of Retry-After)" 1
    else
        assert_equal "$(http_status)" 200
        assert_output --partial "ok 127.0.0.1"
    fi
}

@test "lighttpd, fail open: Redis restart, SCRIPT FLUSH, failover mid-run: only 200/429" {
    outage_run open
}

@test "lighttpd, fail closed: Redis restart, SCRIPT FLUSH, failover mid-run: only 200/429/503" {
    outage_run closed
}

# ------------------------------------------------------------- (c) signals

# stop_in_flight SIG: a worker that gets SIG while its script runs
# finishes the request, headers and all, then exits 0.
stop_in_flight() {
    local req
    redis_start
    worker_start "$T/w.sock"
    run fcgi_req SCRIPT_FILENAME="$CGI/ok.cgi" </dev/null
    assert_output --partial "ok 127.0.0.1"
    fcgi_req SCRIPT_FILENAME="$CGI/gate.sh" HTTP_X_GATE="$T/gate" </dev/null >"$T/inflight.out" &
    req=$!
    wait_child "$W_PID"
    kill "-$1" "$W_PID"
    touch "$T/gate"
    wait_exit "$req"
    assert_equal "$RC" 0
    run cat "$T/inflight.out"
    assert_output --partial "slept"
    assert_equal "$(printf '%s\n' "$output" | sed -n 's/^X-RateLimit-Limit: //p' | tr -d '\r')" 60
    wait_exit "$W_PID"
    assert_equal "$RC" 0
    W_PID=
}

@test "FastCGI on fd 0: SIGTERM during a request finishes it, then exits 0" {
    stop_in_flight TERM
}

@test "FastCGI on fd 0: SIGUSR1 (libfcgi's graceful stop) during a request finishes it, then exits 0" {
    stop_in_flight USR1
}

@test "FastCGI on fd 0: SIGTERM when idle, right after a request, exits 0" {
    redis_start
    worker_start "$T/w.sock"
    run fcgi_req SCRIPT_FILENAME="$CGI/ok.cgi" </dev/null
    assert_output --partial "ok 127.0.0.1"
    kill -TERM "$W_PID"
    # no next connection is needed to notice it
    wait_exit "$W_PID"
    assert_equal "$RC" 0
    W_PID=
}

@test "FastCGI on fd 0: SIGTERM during a request, the next connection already waiting: that request finishes, the waiting one is not taken, exit 0" {
    local req next
    redis_start
    worker_start "$T/w.sock"
    # The in-flight script answers only when the test opens its gate, so
    # a slow machine cannot finish it before the next connection queues.
    fcgi_req SCRIPT_FILENAME="$CGI/gate.sh" HTTP_X_GATE="$T/gate" </dev/null >"$T/inflight.out" &
    req=$!
    wait_child "$W_PID"
    # The next request's connection and head wait in the socket's backlog
    # (the worker is busy): its listening socket is ready when it loops.
    fcgi_req SCRIPT_FILENAME="$CGI/ok.cgi" </dev/null >"$T/next.out" &
    next=$!
    wait_queued "$T/w.sock"
    kill -TERM "$W_PID"
    touch "$T/gate"
    wait_exit "$req"
    assert_equal "$RC" 0
    run cat "$T/inflight.out"
    assert_output --partial "slept"
    wait_exit "$W_PID"
    assert_equal "$RC" 0
    W_PID=
    wait_exit "$next"
    run cat "$T/next.out"
    refute_output --partial "ok 127.0.0.1"
}

@test "FastCGI on fd 0: SIGTERM while waiting for a stalled Redis: the request gets its FAIL answer, exit 0" {
    local req
    redis_start
    export RATELIMIT_REDIS_TIMEOUT_MS=3000 RATELIMIT_FAIL=closed
    worker_start "$T/w.sock"
    run fcgi_req SCRIPT_FILENAME="$CGI/ok.cgi" </dev/null
    assert_output --partial "ok 127.0.0.1"
    stall_redis
    fcgi_req SCRIPT_FILENAME="$CGI/ok.cgi" </dev/null >"$T/inflight.out" &
    req=$!
    # until the worker has sent its EVALSHA (it sits in the stopped
    # server's socket buffer)
    local sent=
    for _ in $(seq 500); do
        [ -n "$(redis_unread)" ] && { sent=1; break; }
        sleep 0.02
    done
    [ -n "$sent" ]
    kill -TERM "$W_PID"
    wait_exit "$req"
    assert_equal "$RC" 0
    run cat "$T/inflight.out"
    assert_equal "$(status_of)" 503
    wait_exit "$W_PID"
    assert_equal "$RC" 0
    W_PID=
}

@test "plain CGI: SIGTERM while the script runs: the answer completes, exit 0" {
    local pid envs
    redis_start
    mapfile -t envs < <(rl_env)
    env -i PATH="$PATH" "${CGI_BASE[@]}" "${envs[@]}" RATELIMIT_BACKEND="$CGI/gate.sh" \
        HTTP_X_GATE="$T/gate" ${TEST_PREFIX:-} "$RL_BIN" </dev/null >"$T/cgi.out" 2>>"$T/stderr" &
    pid=$!
    wait_child "$pid"
    kill -TERM "$pid"
    touch "$T/gate"
    wait_exit "$pid"
    assert_equal "$RC" 0
    run cat "$T/cgi.out"
    assert_output --partial "slept"
    [ -n "$(header_of X-RateLimit-Remaining)" ]
}

@test "SIGPIPE never kills: clients that hang up mid-answer, the worker serves on" {
    local pid i
    redis_start
    export RATELIMIT_LIMIT=4
    fcgi_start 1
    pid=$(fcgi_pids)
    # a long answer from the script, cut after 1000 bytes, three times
    for i in 1 2 3; do
        fcgi_req SCRIPT_FILENAME="$CGI/big.sh" QUERY_STRING=20 </dev/null >/dev/null || true
        fcgi_req -c 1000 SCRIPT_FILENAME="$CGI/big.sh" QUERY_STRING=20 </dev/null >/dev/null || true
    done
    assert_equal "$(fcgi_pids)" "$pid"
    # our own (denial) answer, cut after 10 bytes
    fcgi_req -c 10 SCRIPT_FILENAME="$CGI/ok.cgi" </dev/null >/dev/null || true
    assert_equal "$(fcgi_pids)" "$pid"
    run fcgi_req SCRIPT_FILENAME="$CGI/ok.cgi" RATELIMIT_LIMIT=100 </dev/null
    assert_output --partial "ok 127.0.0.1"
    assert_equal "$(fcgi_pids)" "$pid"
    ! grep -q "signal 13" "$T/fcgi.log"
}

@test "SIGPIPE never kills: plain CGI whose reader goes away exits 0" {
    local envs rc
    redis_start
    mapfile -t envs < <(rl_env)
    env -i PATH="$PATH" "${CGI_BASE[@]}" "${envs[@]}" RATELIMIT_BACKEND="$CGI/big.sh" \
        QUERY_STRING=20 ${TEST_PREFIX:-} "$RL_BIN" </dev/null 2>>"$T/stderr" | head -c 1000 >/dev/null
    rc=${PIPESTATUS[0]}
    assert_equal "$rc" 0
}

@test "a body the web server breaks off: one line in the worker's stderr, the script gone, the worker serves on" {
    redis_start
    worker_start "$T/w.sock"
    head -c 100000 /dev/zero >"$T/part"
    # 100 000 of 1 000 000 bytes, then the connection closes: nothing sent
    # on it any more reaches the web server, so the line must go to the
    # process' stderr, which lighttpd and mod_fcgid put in their log too
    fcgi_req -b SCRIPT_FILENAME="$CGI/echo-sha.sh" REQUEST_METHOD=POST CONTENT_LENGTH=1000000 \
        <"$T/part" >/dev/null || true
    retry 100 0.1 grep -q "request body" "$T/worker.log" || true
    run grep "request body" "$T/worker.log"
    assert_output --regexp "cgi $CGI/echo-sha.sh \(client 127\.0\.0\.1\): request body ended early after 100000 bytes"
    assert_equal "${#lines[@]}" 1
    [ -z "$(children_of "$W_PID")" ]
    run fcgi_req SCRIPT_FILENAME="$CGI/ok.cgi" </dev/null
    assert_output --partial "ok 127.0.0.1"
    kill -0 "$W_PID"
}

@test "EINTR: a storm of SIGPIPEs during an 8 MB POST both ways leaves the answer intact" {
    local pid storm want got ign
    redis_start
    fcgi_start 1
    pid=$(fcgi_pids)
    head -c 8388608 /dev/urandom >"$T/body"
    want=$(sha256_of "$T/body")
    # FCGX_Init installs a no-op SIGPIPE handler without SA_RESTART: each
    # delivery made libfcgi's blocking read of the body fail with EINTR and
    # the request was dropped. The worker must ignore SIGPIPE (bit 13 of
    # SigIgn), after FCGX_Init.
    ign=$(sed -n 's/^SigIgn:[[:space:]]*//p' "/proc/$pid/status")
    [ $(((0x$ign >> 12) & 1)) -eq 1 ]
    (while kill -PIPE "$pid" 2>/dev/null; do sleep 0.001; done) &
    storm=$!
    run fcgi_req SCRIPT_FILENAME="$CGI/echo-sha.sh" REQUEST_METHOD=POST CONTENT_LENGTH=8388608 <"$T/body"
    kill "$storm" 2>/dev/null
    wait "$storm" 2>/dev/null || true
    got=$(body_of | tail -n1)
    assert_equal "$got" "len=8388608 sha256=$want"
    assert_equal "$(fcgi_pids)" "$pid"
}
