#!/usr/bin/env bats
# boundaries.bats - what a FastCGI request may not change: the settings
# that decide where counts go and what runs are the administrator's alone,
# so a request parameter naming one (Redis, the script root, the backend,
# the mode...) is ignored and named once per worker in the log, never with
# its value; RATELIMIT_OVERRIDES=none ignores every RATELIMIT_* parameter.
# Against the real binary as a FastCGI worker and a real private
# redis-server.

load lib/load

CGI="$FIXTURES/cgi"

setup() {
    redis_start
    export RATELIMIT_LIMIT=2 RATELIMIT_WINDOW=1m
}

teardown() {
    fcgi_stop
    redis_stop
    if [ -n "${OTHER_PID:-}" ]; then
        kill "$OTHER_PID" 2>/dev/null || true
        wait "$OTHER_PID" 2>/dev/null || true
    fi
}

# logs: everything the workers logged (the request's FCGI_STDERR and the
# process stderr).
logs() {
    cat "$T/fcgi-stderr" "$T/fcgi.log" 2>/dev/null || true
}

@test "boundary: a RATELIMIT_REDIS_URL parameter does not re-point Redis; logged once, no value" {
    export RATELIMIT_BACKEND="$CGI/ok.cgi"
    # A second server, the one a hostile request would point the worker at.
    redis_server OTHER_PID "$T/other.sock"
    fcgi_start 1
    for want in 200 200 429; do
        run fcgi_req "RATELIMIT_REDIS_URL=unix://$T/other.sock" RATELIMIT_REDIS_PASSWORD=pw-Zq9 \
            </dev/null
        assert_equal "$(status_of)" "$want"
    done
    # Counted in the administrator's Redis, none in the other one.
    [ "$(rcli --scan --pattern 'ratelimit:*' | wc -l)" -ge 1 ]
    assert_equal "$("$RL_CLI_BIN" -s "$T/other.sock" DBSIZE)" 0
    assert_equal "$(logs | grep -c 'request parameter RATELIMIT_REDIS_URL ignored')" 1
    assert_equal "$(logs | grep -c 'request parameter RATELIMIT_REDIS_PASSWORD ignored')" 1
    assert_equal "$(logs | grep -c -e other.sock -e pw-Zq9)" 0
}

@test "boundary: RATELIMIT_BACKEND=/bin/sh and an empty RATELIMIT_SCRIPT_ROOT as parameters run no shell" {
    export RATELIMIT_SCRIPT_ROOT="$CGI" RATELIMIT_LIMIT=100
    fcgi_start 1
    printf 'printf "Status: 200 OK\\r\\n\\r\\npwned\\n"\n' >"$T/body"
    size=$(wc -c <"$T/body")
    run fcgi_req "SCRIPT_FILENAME=$CGI/ok.cgi" REQUEST_METHOD=POST "CONTENT_LENGTH=$size" \
        RATELIMIT_BACKEND=/bin/sh RATELIMIT_SCRIPT_ROOT= <"$T/body"
    assert_equal "$(status_of)" 200
    assert_output --partial "ok 127.0.0.1"
    refute_output --partial pwned
    # The script the server names is still checked against the root.
    run fcgi_req SCRIPT_FILENAME=/bin/sh REQUEST_METHOD=POST "CONTENT_LENGTH=$size" \
        RATELIMIT_SCRIPT_ROOT= RATELIMIT_BACKEND= <"$T/body"
    assert_equal "$(status_of)" 403
    refute_output --partial pwned
    assert_equal "$(logs | grep -c 'request parameter RATELIMIT_BACKEND ignored')" 1
    assert_equal "$(logs | grep -c 'request parameter RATELIMIT_SCRIPT_ROOT ignored')" 1
    assert_equal "$(logs | grep ignored | grep -c /bin/sh)" 0
}

@test "boundary: RATELIMIT_MODE as a parameter changes no role; logged once per worker" {
    export RATELIMIT_BACKEND="$CGI/ok.cgi" RATELIMIT_LIMIT=100
    fcgi_start 1
    # A responder stays a responder: the script runs.
    for i in 1 2 3; do
        run fcgi_req RATELIMIT_MODE=authorizer </dev/null
        assert_equal "$(status_of)" 200
        assert_output --partial "ok 127.0.0.1"
        [ -z "$(header_of Variable-RATELIMIT_LIMIT)" ]
    done
    # An authorizer stays an authorizer: no script, only Variable-*.
    run fcgi_req -a RATELIMIT_MODE=wrapper </dev/null
    assert_equal "$(status_of)" 200
    assert_equal "$(header_of Variable-RATELIMIT_LIMIT)" 100
    refute_output --partial "ok 127.0.0.1"
    assert_equal "$(logs | grep -c 'request parameter RATELIMIT_MODE ignored')" 1
}

@test "boundary: a policy parameter still overrides next to an ignored boundary" {
    export RATELIMIT_BACKEND="$CGI/ok.cgi"
    fcgi_start 1
    run fcgi_req RATELIMIT_LIMIT=1 RATELIMIT_PREFIX=evil: </dev/null
    assert_equal "$(status_of)" 200
    assert_equal "$(header_of X-RateLimit-Limit)" 1
    run fcgi_req RATELIMIT_LIMIT=1 RATELIMIT_PREFIX=evil: </dev/null
    assert_equal "$(status_of)" 429
    assert_equal "$(rcli --scan --pattern 'evil:*' | wc -l)" 0
}

@test "RATELIMIT_OVERRIDES=none: a RATELIMIT_LIMIT parameter is ineffective; logged once" {
    export RATELIMIT_BACKEND="$CGI/ok.cgi" RATELIMIT_LIMIT=1 RATELIMIT_OVERRIDES=none
    fcgi_start 1
    run fcgi_req RATELIMIT_LIMIT=1000 </dev/null
    assert_equal "$(status_of)" 200
    assert_equal "$(header_of X-RateLimit-Limit)" 1
    run fcgi_req RATELIMIT_LIMIT=1000 </dev/null
    assert_equal "$(status_of)" 429
    run fcgi_req RATELIMIT_LIMIT=abc </dev/null
    assert_equal "$(status_of)" 429
    assert_equal "$(logs | grep -c 'RATELIMIT_OVERRIDES=none')" 1
}
