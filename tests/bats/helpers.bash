# helpers.bash - shared setup for the bats suites: a private redis-server
# (or valkey-server, see RL_REDIS_SERVER) on a unix socket in the test's
# temp dir, the binary under test, a FastCGI client, and cleanup by PID
# (never by name).
#
# Environment from Makefile.am (make check): RL_BIN, RL_FCGI_CLIENT,
# RL_SRCDIR, RL_BUILDDIR. TEST_PREFIX (e.g. "valgrind ...") wraps every run
# of the binary, as hiredis' test.sh does.

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'

: "${RL_BIN:?RL_BIN must name the fcgi-ratelimit binary (run through make check)}"
: "${RL_SRCDIR:?}"
FIXTURES="$RL_SRCDIR/tests/bats/fixtures"

# RL_REDIS_SERVER=redis|valkey (default redis): the server every suite
# starts, and its cli. The one place that names them: tests start
# "$RL_SERVER_BIN" and talk to it through rcli ("$RL_CLI_BIN").
# ./run-tests --valkey sets valkey (Debian 13's valkey-server).
case "${RL_REDIS_SERVER:=redis}" in
redis) RL_SERVER_BIN=redis-server RL_CLI_BIN=redis-cli ;;
valkey) RL_SERVER_BIN=valkey-server RL_CLI_BIN=valkey-cli ;;
*)
    echo "RL_REDIS_SERVER must be redis or valkey, not '$RL_REDIS_SERVER'" >&2
    return 1
    ;;
esac
export RL_REDIS_SERVER RL_SERVER_BIN RL_CLI_BIN

# rl_tmp: a private directory for this test (removed by bats).
rl_tmp() {
    T="${BATS_TEST_TMPDIR:-$(mktemp -d)}"
    export T
}

# listening PATH: a socket is bound to PATH and listening (its line in
# /proc/net/unix has __SO_ACCEPTCON, flags 00010000). A socket file alone
# is not enough: it exists between bind() and listen(), and a stale one
# (left by a killed server) exists with nobody behind it.
listening() {
    awk -v p="$1" '$8 == p && $4 == "00010000" { f = 1 } END { exit !f }' /proc/net/unix
}

# wait_for PATH|PORT [tries]: until a unix socket listens or a TCP port on
# 127.0.0.1 accepts (tries x 0.05 s; default 200 = 10 s).
wait_for() {
    local what="$1" tries="${2:-200}" i
    for ((i = 0; i < tries; i++)); do
        if [[ "$what" == /* ]]; then
            [ -S "$what" ] && listening "$what" && return 0
        else
            (exec 3<>"/dev/tcp/127.0.0.1/$what") 2>/dev/null && return 0
        fi
        sleep 0.05
    done
    echo "timed out waiting for $what" >&2
    return 1
}

# redis_start: private server ($RL_SERVER_BIN) on $T/redis.sock; sets
# REDIS_SOCK, REDIS_PID and RATELIMIT_REDIS_URL for the binary.
redis_start() {
    rl_tmp
    REDIS_SOCK="$T/redis.sock"
    local auth=()
    [ -n "${REDIS_REQUIREPASS:-}" ] && auth=(--requirepass "$REDIS_REQUIREPASS")
    "$RL_SERVER_BIN" --port 0 --unixsocket "$REDIS_SOCK" --unixsocketperm 777 \
        --save '' --appendonly no --dir "$T" --daemonize no \
        --logfile "$T/redis.log" "${auth[@]}" 3>&- &
    REDIS_PID=$!
    export REDIS_SOCK REDIS_PID
    export RATELIMIT_REDIS_URL="unix://$REDIS_SOCK"
    # A loaded CI machine (2 cores, sanitizers, valgrind) must not turn a
    # slow answer into a Redis outage; the resilience tests set their own.
    export RATELIMIT_REDIS_TIMEOUT_MS="${RATELIMIT_REDIS_TIMEOUT_MS:-2000}"
    wait_for "$REDIS_SOCK"
}

# redis_stop: stop the private redis-server by PID and wait for it.
redis_stop() {
    if [ -n "${REDIS_PID:-}" ]; then
        kill "$REDIS_PID" 2>/dev/null || true
        wait "$REDIS_PID" 2>/dev/null || true
        REDIS_PID=
    fi
}

# rcli ARGS...: the cli ($RL_CLI_BIN) against the private server.
# REDISCLI_AUTH (valkey-cli: VALKEYCLI_AUTH, or the old name) only when
# there is a password: redis-cli 7 sends AUTH "" for an empty one, and
# --scan then fails (exit 1, no output) on a server without one.
rcli() {
    if [ -n "${REDIS_REQUIREPASS:-}" ]; then
        REDISCLI_AUTH="$REDIS_REQUIREPASS" VALKEYCLI_AUTH="$REDIS_REQUIREPASS" \
            "$RL_CLI_BIN" -s "$REDIS_SOCK" "$@"
    else
        env -u REDISCLI_AUTH -u VALKEYCLI_AUTH "$RL_CLI_BIN" -s "$REDIS_SOCK" "$@"
    fi
}

# The CGI variables a web server always sends, for env -i runs.
CGI_BASE=(GATEWAY_INTERFACE=CGI/1.1 SERVER_PROTOCOL=HTTP/1.1 SERVER_SOFTWARE=bats
    SERVER_NAME=localhost SERVER_PORT=80 REQUEST_METHOD=GET QUERY_STRING=
    SCRIPT_NAME=/t.cgi REMOTE_ADDR=127.0.0.1)

# rl_env: the RATELIMIT_* variables of the current shell, as NAME=VALUE words.
rl_env() {
    env | grep -E '^RATELIMIT_[A-Z0-9_]*=' || true
}

# cgi_run VAR=VALUE...: run the binary once as plain CGI (stdin from the
# caller) with a clean environment: CGI_BASE, the shell's RATELIMIT_*, then
# the arguments (later wins). Output in $output (bats run) when used as
# `run cgi_run ...`; stderr goes to $T/stderr.
cgi_run() {
    local -a envs
    mapfile -t envs < <(rl_env)
    env -i PATH="$PATH" "${CGI_BASE[@]}" "${envs[@]}" "$@" \
        ${TEST_PREFIX:-} "$RL_BIN" 2>>"$T/stderr"
}

# fcgi_start [N]: start N (default 1) FastCGI workers of the binary on the
# unix socket $T/rl.sock (fd 0 = listening socket, as a web server spawns
# them) with the shell's RATELIMIT_* in their environment; stderr to
# $T/fcgi.log. Sets FCGI_SOCK. spawn-fcgi -n binds the socket and execs a
# shell in place that starts the N workers and exits, so they are orphans
# that share the socket, as cgi-fcgi -start leaves them. (Debian 13's
# cgi-fcgi -start sends its worker SIGTERM as it exits, which is a graceful
# stop to us.) fd 3 carries the socket past sh, which gives a background
# job /dev/null as stdin. fcgi_pids finds the workers through the socket.
fcgi_start() {
    local n="${1:-1}"
    local -a envs
    mapfile -t envs < <(rl_env)
    FCGI_SOCK="$T/rl.sock"
    export FCGI_SOCK
    env -i PATH="$PATH" "${envs[@]}" spawn-fcgi -n -s "$FCGI_SOCK" -- /bin/sh -c \
        'exec 3<&0; n=$1; shift; while [ "$n" -gt 0 ]; do "$@" <&3 3<&- & n=$((n - 1)); done' \
        fcgi_start "$n" ${TEST_PREFIX:-} "$RL_BIN" 2>>"$T/fcgi.log" >/dev/null 3>&-
    wait_for "$FCGI_SOCK"
}

# fcgi_pids: PIDs of processes holding the FastCGI listening socket.
fcgi_pids() {
    local ino
    ino=$(awk -v p="$FCGI_SOCK" '$8 == p { print $7 }' /proc/net/unix | head -n1)
    [ -n "$ino" ] || return 0
    # One find, not a readlink per fd: on a busy machine (valgrind runs
    # hold thousands of fds) the loop took over ten seconds.
    find /proc/[0-9]*/fd -maxdepth 1 -lname "socket:\[$ino\]" 2>/dev/null |
        cut -d/ -f3 | sort -u
}

# fcgi_stop: SIGTERM the workers found by fcgi_pids, then SIGKILL leftovers.
fcgi_stop() {
    [ -n "${FCGI_SOCK:-}" ] || return 0
    local pids p
    pids=$(fcgi_pids)
    if [ -n "$pids" ]; then
        kill $pids 2>/dev/null || true
    fi
    for _ in $(seq 50); do
        pids=$(for p in $pids; do if kill -0 "$p" 2>/dev/null; then echo "$p"; fi; done)
        [ -z "$pids" ] && break
        sleep 0.1
    done
    if [ -n "$pids" ]; then
        kill -9 $pids 2>/dev/null || true
    fi
    rm -f "$FCGI_SOCK"
    FCGI_SOCK=
    return 0
}

# fcgi_req [-a] VAR=VALUE...: one FastCGI request (RESPONDER, or AUTHORIZER
# with -a) to $FCGI_SOCK with CGI_BASE plus the arguments as params; stdin
# is the body. Prints the raw answer; FCGI_STDERR goes to $T/fcgi-stderr.
fcgi_req() {
    local role=()
    if [ "${1:-}" = "-a" ]; then role=(-a); shift; fi
    env -i "${CGI_BASE[@]}" "$@" "$RL_FCGI_CLIENT" "${role[@]}" "$FCGI_SOCK" 2>>"$T/fcgi-stderr"
}

# status_of: the Status code of a CGI answer in $output ("" when none).
status_of() {
    printf '%s\n' "$output" | sed -n 's/^Status: \([0-9][0-9][0-9]\).*/\1/p' | head -n1
}

# header_of NAME: the value of header NAME in $output's header block.
header_of() {
    printf '%s\n' "$output" | tr -d '\r' | awk -v n="$1" '
        BEGIN { n = tolower(n) }
        /^$/ { exit }
        { i = index($0, ":"); if (i && tolower(substr($0, 1, i - 1)) == n) { v = substr($0, i + 1); sub(/^ +/, "", v); print v; exit } }'
}

# body_of: the body of a CGI answer in $output.
body_of() {
    printf '%s\n' "$output" | tr -d '\r' | awk 'b { print } /^$/ { b = 1 }'
}

# json_field NAME: a top-level number or string field of the JSON body.
json_field() {
    body_of | jq -r --arg k "$1" '.[$k] // empty'
}

# children_of PID: the PIDs whose parent is PID (zombies included).
children_of() {
    local p
    for p in /proc/[0-9]*/stat; do
        awk -v want="$1" '{ sub(/^.*\) /, ""); if ($2 == want) { split(FILENAME, a, "/"); print a[3] } }' "$p" 2>/dev/null
    done
}

# zombies_of PID: children of PID in state Z.
zombies_of() {
    local c
    for c in $(children_of "$1"); do
        [ "$(awk '{ sub(/^.*\) /, ""); print $1 }' "/proc/$c/stat" 2>/dev/null)" = Z ] && echo "$c"
    done
}

# fd_count PID: open file descriptors of PID.
fd_count() {
    ls "/proc/$1/fd" | wc -l
}

# Time-based tests size their windows as N * TS seconds: TS is 1, or
# RL_TIME_SCALE, or 10 under a TEST_PREFIX (valgrind makes one run take a
# second or more).
TS=${RL_TIME_SCALE:-1}
if [ -n "${TEST_PREFIX:-}" ] && [ -z "${RL_TIME_SCALE:-}" ]; then
    TS=10
fi

# assert_denied MAXTTL: $output is a 429 from the filter (the script did
# not run) with 1 <= ttl <= MAXTTL and Retry-After equal to it. Sets ttl
# (the caller's local, if it has one).
assert_denied() {
    assert_equal "$(status_of)" 429
    refute_output --partial "ok 127.0.0.1"
    ttl=$(json_field ttl)
    [ "$ttl" -ge 1 ]
    [ "$ttl" -le "$1" ]
    assert_equal "$(header_of Retry-After)" "$ttl"
}
