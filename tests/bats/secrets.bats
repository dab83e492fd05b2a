#!/usr/bin/env bats
# secrets.bats - a script runs with the filter's uid, so it must find no
# route to the Redis password or the authenticated Redis socket: not the
# environment, memory or fds of its parent, not pidfd_getfd, not a core
# file. The filter runs as an unprivileged user here (nobody), as a web
# server runs it, under a password-protected private redis-server.

load lib/load

PW=Sekr1t-Redis-Passw0rd-4711

setup() {
    [ "$(id -u)" = 0 ] || skip "needs root to run the filter as nobody"
    [ -z "${TEST_PREFIX:-}" ] || skip "the filter runs as nobody, outside TEST_PREFIX"
    rl_tmp
    # A world-searchable folder (bats' temp dirs are 0700): nobody must
    # reach the binary, the sockets and the script.
    S=$(mktemp -d /tmp/rl-secrets.XXXXXX)
    chmod 755 "$S"
    cp "$RL_BIN" "$S/fcgi-ratelimit"
    cp "$FIXTURES/cgi/steal.sh" "$S/steal.sh"
    chmod 755 "$S/fcgi-ratelimit" "$S/steal.sh"
    REDIS_SOCK="$S/redis.sock"
    RPORT=$(free_port)
    redis_server REDIS_PID "$REDIS_SOCK" --port "$RPORT" --bind 127.0.0.1 --requirepass "$PW"
    W_PID=
}

teardown() {
    [ -n "${W_PID:-}" ] && kill -9 "$W_PID" 2>/dev/null
    [ -n "${REDIS_PID:-}" ] && kill "$REDIS_PID" 2>/dev/null && wait "$REDIS_PID" 2>/dev/null
    [ -n "${S:-}" ] && rm -rf "$S"
    return 0
}

# worker VAR=VALUE...: one FastCGI worker as nobody on $S/w.sock, a copy of
# the binary in $S.
worker() {
    worker_start -u nobody -b "$S/fcgi-ratelimit" "$S/w.sock" RATELIMIT_REDIS_TIMEOUT_MS=2000 "$@"
}

# steal: run steal.sh through the worker; its answer in $output.
steal() {
    FCGI_SOCK="$S/w.sock"
    run fcgi_req SCRIPT_FILENAME="$S/steal.sh" REQUEST_URI=/steal.sh </dev/null
}

@test "password in RATELIMIT_REDIS_PASSWORD: no route from a script to it or to the Redis socket" {
    worker RATELIMIT_REDIS_URL="unix://$REDIS_SOCK" RATELIMIT_REDIS_PASSWORD="$PW"
    steal
    assert_success
    assert_output --partial "environ: denied"
    assert_output --partial "fd: denied"
    assert_output --partial "mem: denied"
    if [ "$(uname -m)" = x86_64 ]; then
        assert_output --partial "denied" # pidfd_open or pidfd_getfd
        refute_output --partial "pidfd_getfd: took"
    fi
    assert_output --partial "prlimit: denied"
    refute_output --partial "$PW"
    # The check itself used the password: Redis holds the counter.
    [ -n "$(REDISCLI_AUTH="$PW" VALKEYCLI_AUTH="$PW" "$RL_CLI_BIN" -s "$REDIS_SOCK" --scan --pattern 'ratelimit:*')" ]
}

@test "password in the URL: wiped as well" {
    worker RATELIMIT_REDIS_URL="redis://:$PW@127.0.0.1:$RPORT/0"
    steal
    assert_success
    refute_output --partial "$PW"
    refute_output --partial "environ: READ"
}

@test "a crash leaves no core file with the password" {
    worker RATELIMIT_REDIS_URL="unix://$REDIS_SOCK" RATELIMIT_REDIS_PASSWORD="$PW"
    steal
    # The script's best try: raise the limit (denied above) and crash us.
    kill -SEGV "$W_PID" 2>/dev/null || true
    wait "$W_PID" 2>/dev/null || true
    W_PID=
    run sh -c "grep -rl '$PW' '$S' '$T' 2>/dev/null | grep -v redis"
    assert_output ""
    [ -z "$(find "$S" "$T" -name 'core*' 2>/dev/null)" ]
}
