# filter.bash - the binary under test ($RL_BIN, under $TEST_PREFIX): runs as
# plain CGI, FastCGI workers spawned the way a web server spawns them, the
# --listen supervisor and its workers, requests to them with the FastCGI
# client ($RL_FCGI_CLIENT), and the processes they leave.

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

# check_run: the binary's --check with the shell's RATELIMIT_*; stderr
# with stdout.
check_run() {
    local -a envs
    mapfile -t envs < <(rl_env)
    env -i PATH="$PATH" "${envs[@]}" ${TEST_PREFIX:-} "$RL_BIN" --check 2>&1
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

# worker_start [-u USER] [-b BIN] SOCKET [VAR=VALUE...]: one FastCGI worker
# on fd 0: spawn-fcgi -n binds SOCKET and execs the binary in place, so
# W_PID is the worker and `wait` gives its exit status. Its environment:
# the shell's RATELIMIT_*, then the arguments; stderr to $T/worker.log.
# -u USER: run as USER (with USER's group, in SOCKET's folder, the socket
# 0666; needs root). -b BIN: that copy of the binary. Sets FCGI_SOCK.
worker_start() {
    local bin="$RL_BIN" user='' sock
    local -a as envs
    while [ $# -gt 0 ]; do
        case "$1" in
        -u) user="$2"; shift 2 ;;
        -b) bin="$2"; shift 2 ;;
        *) break ;;
        esac
    done
    sock="$1"
    shift
    [ -z "$user" ] || as=(-u "$user" -g "$(id -gn "$user")" -d "$(dirname "$sock")" -M 0666)
    mapfile -t envs < <(rl_env)
    env -i PATH="$PATH" "${envs[@]}" "$@" spawn-fcgi -n "${as[@]}" -s "$sock" \
        -- ${TEST_PREFIX:-} "$bin" 2>>"$T/worker.log" 3>&- &
    W_PID=$!
    FCGI_SOCK="$sock"
    # long: under valgrind (memcheck.bats) a worker takes seconds to start
    wait_for "$sock" 1200
}

# fcgi_req [CLIENT-OPTIONS...] VAR=VALUE...: one FastCGI request to
# $FCGI_SOCK with CGI_BASE plus the arguments as params; stdin is the body.
# Options go to the client (tests/bats/fcgi-client.c: -a the AUTHORIZER
# role, -c BYTES hang up after BYTES of answer, -b, -n, ...). Prints the
# raw answer; FCGI_STDERR goes to $T/fcgi-stderr. A request that hangs
# fails after 120 s instead of holding the suite.
fcgi_req() {
    local -a opts
    while [ $# -gt 0 ]; do
        case "$1" in
        -[cks]) opts+=("$1" "$2"); shift 2 ;;
        -*) opts+=("$1"); shift ;;
        *) break ;;
        esac
    done
    env -i "${CGI_BASE[@]}" "$@" timeout 120 "$RL_FCGI_CLIENT" "${opts[@]}" "$FCGI_SOCK" \
        2>>"$T/fcgi-stderr"
}

# listen_start [VAR=VALUE...] ADDR [ARGS...]: `fcgi-ratelimit --listen ADDR
# ARGS...` in the background with the shell's environment plus the
# variables; PID in LPID, stderr to $T/listen.log. Waits until ADDR
# listens (without connecting, see listening) and a worker is up.
listen_start() {
    local -a envs
    while [[ "${1:-}" == *=* ]]; do
        envs+=("$1")
        shift
    done
    local addr="$1"
    shift
    env "${envs[@]}" ${TEST_PREFIX:-} "$RL_BIN" --listen "$addr" "$@" 2>>"$T/listen.log" &
    LPID=$!
    case "$addr" in
    unix:*) wait_for "${addr#unix:}" ;;
    *) wait_for "$addr" ;;
    esac || return 1
    retry 200 0.05 has_child "$LPID" || { echo "--listen $addr started no worker" >&2; return 1; }
}

# listen_stop: SIGKILL the supervisor started by listen_start and its
# workers, and reap it.
listen_stop() {
    [ -n "${LPID:-}" ] || return 0
    kill -9 "$LPID" $(workers) 2>/dev/null
    wait "$LPID" 2>/dev/null || true
    LPID=
}

# workers: the supervisor's children (its workers), one PID a line.
workers() {
    pgrep -P "$LPID" || true
}

# nworkers N: the supervisor has exactly N children.
nworkers() {
    [ "$(workers | wc -l)" -eq "$1" ]
}

# wait_workers N: until the supervisor has exactly N children (10 s).
wait_workers() {
    retry 200 0.05 nworkers "$1" && return 0
    echo "workers: $(workers | tr '\n' ' '), expected $1" >&2
    return 1
}

# log_count REGEX FILE...: how many lines of the FILEs (missing ones: none)
# match the extended REGEX.
log_count() {
    local re="$1"
    shift
    cat "$@" 2>/dev/null | grep -cE -- "$re" || true
}

# rl_leftovers: PIDs of processes of the binary under test (or of a copy in
# $T) whose environment names this test's folder (none should survive a
# server).
rl_leftovers() {
    local p exe bin
    bin=$(readlink -f "$RL_BIN")
    for p in /proc/[0-9]*; do
        exe=$(readlink "$p/exe" 2>/dev/null) || continue
        [ "$exe" = "$bin" ] || [[ "$exe" == "$T/"* ]] || continue
        tr '\0' '\n' <"$p/environ" 2>/dev/null | grep -qF "$T/" && echo "${p#/proc/}"
    done
    return 0
}

# kill_leftovers: TERM, then KILL, what rl_leftovers finds.
kill_leftovers() {
    local pids
    pids=$(rl_leftovers)
    [ -z "$pids" ] && return 0
    kill $pids 2>/dev/null
    sleep 0.5
    pids=$(rl_leftovers)
    [ -n "$pids" ] && kill -9 $pids 2>/dev/null
    return 0
}

# engine_setup / engine_teardown: the suites that drive the binary against
# one private Redis (engine, algorithms, rules, identity, allow-deny): the
# ok.cgi backend, 3 requests a minute; stop any FastCGI worker and Redis.
engine_setup() {
    redis_start
    export RATELIMIT_BACKEND="$FIXTURES/cgi/ok.cgi"
    export RATELIMIT_LIMIT=3 RATELIMIT_WINDOW=1m
}

engine_teardown() {
    fcgi_stop
    redis_stop
}
