#!/usr/bin/env bats
# listen.bats - `fcgi-ratelimit --listen`: the socket it opens itself (unix,
# IPv4, IPv6, or one inherited on fd 0), its pre-forked workers, their
# respawn, and the orderly stop on SIGTERM.

load lib/load

setup() {
    redis_start
    export RATELIMIT_LIMIT=1000
    LPID=
    OK_CGI="$FIXTURES/cgi/ok.cgi"
}

teardown() {
    listen_stop
    redis_stop
}

# ok_request ADDR: one request for ok.cgi must come back allowed.
ok_request() {
    FCGI_SOCK="$1"
    run fcgi_req SCRIPT_FILENAME="$OK_CGI" CONTENT_LENGTH=0 </dev/null
    assert_success
    assert_output --partial "ok 127.0.0.1"
    [ "$(header_of X-RateLimit-Limit)" = 1000 ]
}

@test "--listen unix: serves requests on a 0660 socket" {
    listen_start "unix:$T/l.sock" --workers 2
    [ "$(stat -c %a "$T/l.sock")" = 660 ]
    ok_request "$T/l.sock"
    ok_request "$T/l.sock"
}

@test "--listen --socket-mode sets the socket's permissions" {
    listen_start "unix:$T/l.sock" --workers 1 --socket-mode 0600
    [ "$(stat -c %a "$T/l.sock")" = 600 ]
    ok_request "$T/l.sock"
}

@test "--listen 127.0.0.1:PORT serves requests over IPv4" {
    local port
    port=$(free_port)
    listen_start "127.0.0.1:$port" --workers 2
    ok_request "127.0.0.1:$port"
    # bound to loopback only
    run grep -c ":$(printf '%04X' "$port") " /proc/net/tcp
    [ "$output" -ge 1 ]
    grep -q "0100007F:$(printf '%04X' "$port") 00000000:0000 0A" /proc/net/tcp
}

@test "--listen [::1]:PORT serves requests over IPv6" {
    grep -q '^00000000000000000000000000000001 ' /proc/net/if_inet6 2>/dev/null ||
        skip "no ::1 on this host"
    local port
    port=$(free_port)
    listen_start "[::1]:$port" --workers 1
    ok_request "[::1]:$port"
    grep -qi "00000000000000000000000001000000:$(printf '%04X' "$port") " /proc/net/tcp6
}

@test "--listen pre-forks N workers and replaces one that dies" {
    local victim
    listen_start "unix:$T/l.sock" --workers 3
    wait_workers 3
    victim=$(workers | head -n1)
    kill -9 "$victim"
    # the supervisor reaps it and forks a replacement: three again, without it
    wait_gone "$victim"
    wait_workers 3
    run workers
    refute_line "$victim"
    ok_request "$T/l.sock"
    grep -q "killed by signal 9" "$T/listen.log"
}

@test "--listen: SIGTERM stops the workers, removes the socket, exits 0" {
    local w
    listen_start "unix:$T/l.sock" --workers 2
    wait_workers 2
    w=$(workers)
    kill -TERM "$LPID"
    rc=0
    wait "$LPID" || rc=$?
    [ "$rc" -eq 0 ]
    LPID=
    [ ! -e "$T/l.sock" ]
    for p in $w; do ! kill -0 "$p" 2>/dev/null; done
}

@test "--listen: workers do not outlive a supervisor killed with SIGKILL" {
    local w
    listen_start "unix:$T/l.sock" --workers 2
    wait_workers 2
    w=$(workers)
    kill -9 "$LPID"
    wait "$LPID" 2>/dev/null || true
    LPID=
    for p in $w; do
        wait_gone "$p" || { kill -9 "$p"; false; }
    done
}

@test "--listen: a request in flight when SIGTERM arrives still completes" {
    local req
    listen_start "unix:$T/l.sock" --workers 2
    wait_workers 2
    FCGI_SOCK="$T/l.sock"
    fcgi_req SCRIPT_FILENAME="$FIXTURES/cgi/gate.sh" HTTP_X_GATE="$T/gate" CONTENT_LENGTH=0 \
        </dev/null >"$T/inflight.out" &
    req=$!
    # wait until a worker runs the script (a child of a worker); the
    # script answers only once the gate is open, after the signal
    wait_child "$(workers | paste -sd,)"
    kill -TERM "$LPID"
    touch "$T/gate"
    rc=0
    wait "$req" || rc=$?
    [ "$rc" -eq 0 ]
    run cat "$T/inflight.out"
    assert_output --partial "slept"
    rc=0
    wait "$LPID" || rc=$?
    [ "$rc" -eq 0 ]
    LPID=
    [ ! -e "$T/l.sock" ]
}

@test "--listen replaces a stale socket file but never a live socket or a file" {
    local first w
    # stale: a socket file nobody listens on (left by a killed run); the
    # worker must be gone too, or it still holds the socket open
    listen_start "unix:$T/l.sock" --workers 1
    wait_workers 1
    w=$(workers)
    kill -9 "$LPID" $w
    wait "$LPID" 2>/dev/null || true
    wait_gone "$w" || { kill -9 "$w"; false; }
    [ -S "$T/l.sock" ]
    ! listening "$T/l.sock"
    listen_start "unix:$T/l.sock" --workers 1
    ok_request "$T/l.sock"
    # live: a second instance on the same path refuses and leaves it alone
    first=$LPID
    run timeout 10 "$RL_BIN" --listen "unix:$T/l.sock"
    [ "$status" -ne 0 ]
    assert_output --partial "listening"
    ok_request "$T/l.sock"
    # not a socket: refused, the file kept
    echo data >"$T/file"
    run timeout 10 "$RL_BIN" --listen "unix:$T/file"
    [ "$status" -ne 0 ]
    assert_output --partial "not a socket"
    [ "$(cat "$T/file")" = data ]
    LPID=$first
}

@test "--listen rejects a malformed address with a message" {
    for a in "nonsense" "127.0.0.1:0" "127.0.0.1:99999" "::1:9000" "unix:"; do
        run timeout 10 "$RL_BIN" --listen "$a"
        [ "$status" -ne 0 ]
        assert_output --partial "$a"
    done
}

@test "--listen fd:0 adopts an inherited socket (systemd StandardInput=socket)" {
    command -v spawn-fcgi >/dev/null || skip "spawn-fcgi is not installed"
    # spawn-fcgi -n binds the socket, puts it on fd 0 and execs us in place
    spawn-fcgi -n -s "$T/sd.sock" -M 0600 -- "$RL_BIN" --listen fd:0 --workers 2 \
        2>>"$T/listen.log" &
    LPID=$!
    wait_for "$T/sd.sock"
    wait_workers 2
    ok_request "$T/sd.sock"
    kill -TERM "$LPID"
    rc=0
    wait "$LPID" || rc=$?
    [ "$rc" -eq 0 ]
    LPID=
    # not ours to remove: whoever created it (systemd) keeps it
    [ -S "$T/sd.sock" ]
}
