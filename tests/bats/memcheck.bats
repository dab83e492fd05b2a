#!/usr/bin/env bats
# memcheck.bats - a long-lived FastCGI worker under valgrind: requests of
# every kind through one worker, then SIGTERM; memcheck must report no
# memory error and no definite leak. make check-valgrind reaches the plain
# CGI runs (one request a process); this reaches the per-request paths of
# the FastCGI loop, where a leak grows with every request.

load lib/load

CGI="$FIXTURES/cgi"

setup() {
    command -v valgrind >/dev/null || skip "valgrind is not installed"
    command -v spawn-fcgi >/dev/null || skip "spawn-fcgi is not installed"
    [ -z "${TEST_PREFIX:-}" ] || skip "already under TEST_PREFIX"
    if ldd "$RL_BIN" | grep -q libasan; then
        skip "a sanitizer build: valgrind and ASan do not mix"
    fi
    redis_start
    W_PID=
}

teardown() {
    if [ -n "${W_PID:-}" ]; then
        kill -9 "$W_PID" 2>/dev/null
        wait "$W_PID" 2>/dev/null || true
    fi
    redis_stop
}

# ask VAR=VALUE...: one request (stdin the body); its Status code.
ask() {
    run fcgi_req "$@"
    status_of
}

@test "memcheck: 240 FastCGI requests of every kind through one worker, no error, no definite leak" {
    local i rc
    # The worker under valgrind (worker_start runs it under TEST_PREFIX):
    # W_PID is the worker, and its exit status valgrind's (99 on any
    # finding).
    TEST_PREFIX="$(command -v valgrind) -q --error-exitcode=99 --leak-check=full \
        --errors-for-leak-kinds=definite --show-leak-kinds=definite --track-origins=yes \
        --trace-children=no --child-silent-after-fork=yes \
        --suppressions=$RL_SRCDIR/tests/valgrind.supp --log-file=$T/vg.log" \
        worker_start "$T/w.sock" RATELIMIT_LIMIT=1000000
    printf 'a=1&b=2' >"$T/body"
    for ((i = 0; i < 20; i++)); do
        # relayed: allowed, a POST body, a redirect, a key from a header
        assert_equal "$(ask SCRIPT_FILENAME="$CGI/ok.cgi" </dev/null)" 200
        assert_equal "$(ask SCRIPT_FILENAME="$CGI/echo-sha.sh" REQUEST_METHOD=POST \
            CONTENT_LENGTH=7 <"$T/body")" 200
        assert_equal "$(ask SCRIPT_FILENAME="$CGI/redirect.sh" </dev/null)" 302
        assert_equal "$(ask SCRIPT_FILENAME="$CGI/ok.cgi" RATELIMIT_KEY=header:X-Api-Key \
            HTTP_X_API_KEY="key-$i" </dev/null)" 200
        # denied: from Redis once, then from the denial cache
        assert_equal "$(ask SCRIPT_FILENAME="$CGI/ok.cgi" RATELIMIT_NAME=tight \
            RATELIMIT_LIMIT=1 RATELIMIT_WINDOW=1h </dev/null)" "$([ "$i" = 0 ] && echo 200 || echo 429)"
        # authorizer, allowed and denied
        assert_equal "$(ask -a SCRIPT_FILENAME="$CGI/ok.cgi" </dev/null)" 200
        assert_equal "$(ask -a SCRIPT_FILENAME="$CGI/ok.cgi" RATELIMIT_NAME=tight \
            RATELIMIT_LIMIT=1 RATELIMIT_WINDOW=1h </dev/null)" 429
        # errors: no script, no headers, a bad override, several rules
        assert_equal "$(ask SCRIPT_FILENAME="$CGI/missing.sh" </dev/null)" 404
        assert_equal "$(ask SCRIPT_FILENAME="$CGI/noheaders.sh" </dev/null)" 502
        assert_equal "$(ask SCRIPT_FILENAME="$CGI/ok.cgi" RATELIMIT_LIMIT=-4 </dev/null)" 500
        assert_equal "$(ask SCRIPT_FILENAME="$CGI/ok.cgi" \
            RATELIMIT_RULES="a ip 1000/1m; b ip 1000/1h token-bucket burst=500" </dev/null)" 200
        assert_equal "$(ask SCRIPT_FILENAME="$CGI/ok.cgi" RATELIMIT_ALGORITHM=sliding-log </dev/null)" 200
    done
    kill -TERM "$W_PID"
    rc=0
    wait "$W_PID" || rc=$?
    W_PID=
    if [ "$rc" -ne 0 ]; then
        head -n 60 "$T/vg.log"
    fi
    assert_equal "$rc" 0
    ! grep -q 'definitely lost\|Invalid \|uninitialised' "$T/vg.log"
}
