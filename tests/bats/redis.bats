#!/usr/bin/env bats
# redis.bats - the filter against a real Redis with ACLs: the
# least-privilege user of README.md (every algorithm, both stores, a
# database other than 0), refused AUTH, SELECT and NOPERM as configuration
# errors (their own log line, once per worker; --check exits 1), and the
# Redis socket kept from CGI scripts (two guards: the relay closes fds from
# 3 on, and the socket is FD_CLOEXEC, which tests/unit/test_redisconn
# checks alone). (A server that trickles its reply is
# tests/unit/test_redisconn: a fake peer is for unit tests only.)
#
# Redis listens on 127.0.0.1 (a URL user needs redis://) and, for rcli, on
# a unix socket in the test's temp dir; its default user needs ADMIN_PW.
# Outcomes and counted log lines only, no timing.

load lib/load

CGI="$FIXTURES/cgi"
ADMIN_PW=admin-pw-7
RL_PW=rl-pw-pass-93

setup() {
    rl_tmp
    export REDIS_REQUIREPASS=$ADMIN_PW
    redis_start
    PORT=$(free_port)
    rcli CONFIG SET port "$PORT" >/dev/null
    rcli CONFIG SET bind 127.0.0.1 >/dev/null
    wait_for "$PORT"
    export RATELIMIT_BACKEND="$CGI/ok.cgi" RATELIMIT_LIMIT=2 RATELIMIT_WINDOW=1m
    export RATELIMIT_REDIS_URL="redis://ratelimit:$RL_PW@127.0.0.1:$PORT/1"
}

teardown() {
    fcgi_stop
    redis_stop
}

# acl_from_readme [DROP]: create the user "ratelimit" with README.md's
# ACL line (PASSWORD replaced), without the right DROP when given.
acl_from_readme() {
    local line
    line=$(grep -m1 '^ACL SETUSER ratelimit ' "$RL_SRCDIR/README.md")
    [ -n "$line" ]
    line=${line/>PASSWORD/>$RL_PW}
    [ -z "${1:-}" ] || line=${line/ $1/}
    # shellcheck disable=SC2086 # the line is words; no glob in it matters
    # to redis-cli (~ratelimit:* is quoted by set -f).
    (set -f; rcli $line) | grep -qx OK
}

# req ADDR: one plain CGI request from ADDR; prints the status.
req() {
    run cgi_run REMOTE_ADDR="$1" </dev/null
    status_of
}

@test "README's least-privilege ACL user: every algorithm and store, db 1; --check passes" {
    acl_from_readme
    run env -i PATH="$PATH" RATELIMIT_REDIS_URL="$RATELIMIT_REDIS_URL" ${TEST_PREFIX:-} "$RL_BIN" --check
    assert_success
    local n=0 a s
    for a in fixed-window sliding-log sliding-window token-bucket; do
        for s in keys buckets; do
            [ "$a/$s" = sliding-log/buckets ] && continue
            n=$((n + 1))
            export RATELIMIT_ALGORITHM=$a RATELIMIT_STORE=$s
            assert_equal "$a/$s $(req 10.0.0.$n) $(req 10.0.0.$n) $(req 10.0.0.$n)" "$a/$s 200 200 429"
        done
    done
    assert_equal "$(log_count 'unreachable|configuration error' "$T/stderr")" 0
    # Everything went to database 1, under the prefix.
    [ -n "$(rcli -n 1 --scan --pattern 'ratelimit:*')" ]
    [ -z "$(rcli -n 0 --scan --pattern '*')" ]
}

@test "refused AUTH: one configuration error line per worker, never 'unreachable' nor the password; RATELIMIT_FAIL decides; --check exits 1" {
    acl_from_readme
    export RATELIMIT_REDIS_URL="redis://ratelimit:wrong-$RL_PW@127.0.0.1:$PORT/1"
    export RATELIMIT_FAIL=closed
    fcgi_start 1
    for _ in 1 2 3; do
        run fcgi_req </dev/null
        assert_equal "$(status_of)" 503
    done
    assert_equal "$(log_count "configuration error, authentication refused: AUTH as user 'ratelimit': WRONGPASS" "$T/fcgi-stderr")" 1
    assert_equal "$(log_count unreachable "$T/fcgi-stderr")" 0
    assert_equal "$(log_count "$RL_PW" "$T/fcgi-stderr" "$T/fcgi.log")" 0
    fcgi_stop
    export RATELIMIT_FAIL=open
    assert_equal "$(req 10.0.1.1)" 200
    grep -q 'configuration error, authentication refused' "$T/stderr"
    run env -i PATH="$PATH" RATELIMIT_REDIS_URL="$RATELIMIT_REDIS_URL" ${TEST_PREFIX:-} "$RL_BIN" --check
    assert_failure 1
    assert_output --partial "configuration error, authentication refused: AUTH as user 'ratelimit': WRONGPASS"
    refute_output --partial "$RL_PW"
    # No password at all against a server that wants one: NOAUTH.
    run env -i PATH="$PATH" RATELIMIT_REDIS_URL="redis://127.0.0.1:$PORT/1" ${TEST_PREFIX:-} "$RL_BIN" --check
    assert_failure 1
    assert_output --partial "configuration error, authentication refused: SELECT 1: NOAUTH"
}

@test "refused SELECT: a configuration error line; --check exits 1" {
    acl_from_readme
    export RATELIMIT_REDIS_URL="redis://ratelimit:$RL_PW@127.0.0.1:$PORT/99"
    assert_equal "$(req 10.0.2.1)" 200
    grep -q "configuration error, database refused: SELECT 99: ERR DB index is out of range" "$T/stderr"
    assert_equal "$(log_count unreachable "$T/stderr")" 0
    run env -i PATH="$PATH" RATELIMIT_REDIS_URL="$RATELIMIT_REDIS_URL" ${TEST_PREFIX:-} "$RL_BIN" --check
    assert_failure 1
    assert_output --partial "configuration error, database refused: SELECT 99"
}

@test "NOPERM: no +evalsha fails --check; a command missing inside a script is a configuration error per request" {
    acl_from_readme +evalsha
    run env -i PATH="$PATH" RATELIMIT_REDIS_URL="$RATELIMIT_REDIS_URL" ${TEST_PREFIX:-} "$RL_BIN" --check
    assert_failure 1
    assert_output --partial "configuration error, ACL permission missing: EVALSHA: NOPERM"
    assert_output --partial "evalsha"
    # A key pattern that does not cover the prefix: --check sees it too.
    acl_from_readme
    run env -i PATH="$PATH" RATELIMIT_REDIS_URL="$RATELIMIT_REDIS_URL" RATELIMIT_PREFIX=other: ${TEST_PREFIX:-} "$RL_BIN" --check
    assert_failure 1
    assert_output --partial "configuration error, ACL permission missing: EVALSHA: NOPERM"
    # Without +zadd only sliding-log breaks, and only a request shows it.
    rcli ACL DELUSER ratelimit >/dev/null
    acl_from_readme +zadd
    export RATELIMIT_ALGORITHM=sliding-log RATELIMIT_FAIL=closed
    fcgi_start 1
    for _ in 1 2; do
        run fcgi_req </dev/null
        assert_equal "$(status_of)" 503
    done
    assert_equal "$(log_count 'configuration error, ACL permission missing: EVALSHA: ' "$T/fcgi-stderr")" 1
    assert_equal "$(log_count unreachable "$T/fcgi-stderr")" 0
}

@test "the Redis socket never reaches a CGI script (plain CGI and FastCGI)" {
    # The default user, so that the connection is up while the script
    # runs (the request is counted) even without ACL-user support.
    export RATELIMIT_REDIS_URL="redis://:$ADMIN_PW@127.0.0.1:$PORT/0"
    export RATELIMIT_BACKEND="$CGI/fds.sh"
    run cgi_run </dev/null
    assert_equal "$(status_of)" 200
    assert_output --partial " 2 -> "
    refute_output --partial "socket:"
    fcgi_start 1
    run fcgi_req </dev/null
    assert_equal "$(status_of)" 200
    assert_output --partial " 2 -> "
    refute_output --partial "socket:"
    assert_equal "$(rcli GET "$(rcli --scan --pattern 'ratelimit:*' | head -n1)")" 2
}
