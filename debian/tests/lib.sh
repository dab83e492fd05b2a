# debian/tests/lib.sh - shared by the autopkgtests (sourced, POSIX sh).
# shellcheck shell=sh
#
# The tests run the installed package with its configuration files
# unchanged: the web server's stock configuration (port 80), Redis at the
# packaged default redis://127.0.0.1:6379/0. To keep that from touching
# the testbed's own services and ports, each test re-executes itself in a
# private network namespace (unshare --net, only a loopback) and starts
# everything there itself, by PID: systemd is not needed (a chroot has
# none) and the testbed's services, if any, are left alone.

set -eu

# fail MSG: the message, the server's error log (rl_log) if any, exit 1.
fail() {
    echo "FAIL: $*"
    if [ -n "${rl_log:-}" ] && [ -f "$rl_log" ]; then
        echo "-- last lines of $rl_log:"
        tail -n 20 "$rl_log"
    fi
    exit 1
}

# rl_private_net "$@": once, re-exec the calling test in its own network
# namespace with the loopback up; exit 77 (skip) where none can be made.
rl_private_net() {
    if [ -z "${RL_PRIVATE_NET:-}" ]; then
        if ! unshare --net true 2>/dev/null; then
            echo "SKIP: cannot create a network namespace (unshare --net)"
            exit 77
        fi
        RL_PRIVATE_NET=1 exec unshare --net -- "$0" "$@"
    fi
    ip link set lo up
}

# rl_setup: a temp dir, a private Redis on 127.0.0.1:6379 and a CGI script
# under the document root both servers use (/var/www/html).
rl_setup() {
    tmp=$(mktemp -d)
    chmod 755 "$tmp"
    redis_pid='' server_pid=''
    cgi_dir=/var/www/html/fcgi-ratelimit-autopkgtest
    trap rl_cleanup EXIT
    redis-server --bind 127.0.0.1 --port 6379 --save '' --appendonly no \
        --dir "$tmp" --logfile "$tmp/redis.log" --daemonize no &
    redis_pid=$!
    i=0
    until redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; do
        i=$((i + 1))
        [ "$i" -lt 100 ] || fail "redis-server did not start: $(cat "$tmp/redis.log")"
        sleep 0.1
    done
    mkdir -p "$cgi_dir"
    printf '#!/bin/sh\nprintf "Content-Type: text/plain\\r\\n\\r\\nhello from the legacy app\\n"\n' \
        >"$cgi_dir/hello.cgi"
    chmod 755 "$cgi_dir/hello.cgi"
}

# rl_stop PID: SIGTERM, then wait for it.
rl_stop() {
    [ -n "$1" ] || return 0
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

rl_cleanup() {
    rc=$?
    rl_stop "$server_pid"
    rl_stop "$redis_pid"
    [ -z "${rl_disable:-}" ] || $rl_disable >/dev/null 2>&1 || true
    rm -rf "$cgi_dir" "$tmp"
    exit "$rc"
}

# rl_wait_http URL: until the server answers at all (bounded).
rl_wait_http() {
    i=0
    until curl -s -o /dev/null --max-time 2 "$1"; do
        i=$((i + 1))
        [ "$i" -lt 100 ] || return 1
        sleep 0.1
    done
}

# rl_expect_limit URL LIMIT: LIMIT answers 200 from the CGI script, then
# the 429 with its JSON body.
rl_expect_limit() {
    url=$1 limit=$2 n=0
    while [ "$n" -lt "$limit" ]; do
        n=$((n + 1))
        code=$(curl -s -o "$tmp/body" -D "$tmp/head" --max-time 10 -w '%{http_code}' "$url") || true
        [ "$code" = 200 ] || fail "request $n: $code, expected 200: $(cat "$tmp/head" "$tmp/body")"
        grep -q 'hello from the legacy app' "$tmp/body" || fail "request $n: body $(cat "$tmp/body")"
    done
    echo "ok: $limit requests answered 200 by the CGI script"
    code=$(curl -s -o "$tmp/body" -D "$tmp/head" --max-time 10 -w '%{http_code}' "$url") || true
    cat "$tmp/head" "$tmp/body"
    echo
    [ "$code" = 429 ] || fail "request $((limit + 1)): $code, expected 429"
    grep -q '"message":"call limit reached"' "$tmp/body" || fail "no JSON denial"
    grep -q '"ttl":[0-9]' "$tmp/body" || fail "no ttl in the JSON"
    grep -qi '^Retry-After: [0-9]' "$tmp/head" || fail "no Retry-After"
    echo "ok: request $((limit + 1)) answered 429 with the JSON body"
}
