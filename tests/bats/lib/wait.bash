# wait.bash - waiting for something to happen, and the process table it
# reads. Every wait is bounded and fails with a line on stderr when the
# thing never happened; none of them asserts how long it took.

# retry TRIES STEP CMD...: run CMD until it succeeds, at most TRIES times,
# STEP seconds apart; fails when it never did.
retry() {
    local tries="$1" step="$2" i
    shift 2
    for ((i = 0; i < tries; i++)); do
        "$@" && return 0
        sleep "$step"
    done
    return 1
}

# listening ADDR: something listens on ADDR: a unix socket path (its line
# in /proc/net/unix has __SO_ACCEPTCON, flags 00010000: a socket file alone
# is not enough, it exists between bind() and listen(), and a stale one,
# left by a killed server, has nobody behind it), or a TCP port given as
# PORT, HOST:PORT or [V6]:PORT (a LISTEN line, state 0A, in /proc/net/tcp
# or tcp6). Nothing connects: a probe would be a peer the server counts,
# logs or refuses.
listening() {
    local port files=(/proc/net/tcp)
    if [[ "$1" == /* ]]; then
        awk -v p="$1" '$8 == p && $4 == "00010000" { f = 1 } END { exit !f }' /proc/net/unix
        return
    fi
    port=$(printf ':%04X' "${1##*:}")
    [ -r /proc/net/tcp6 ] && files+=(/proc/net/tcp6)
    awk -v p="$port" 'FNR > 1 && $4 == "0A" && substr($2, length($2) - 4) == p { f = 1 }
        END { exit !f }' "${files[@]}"
}

# wait_for ADDR [TRIES]: until ADDR (as for listening) listens; TRIES x
# 0.05 s, default 200 (10 s).
wait_for() {
    retry "${2:-200}" 0.05 listening "$1" && return 0
    echo "timed out waiting for $1 to listen" >&2
    return 1
}

# gone PID: no process PID (a zombie still counts until it is reaped).
gone() {
    ! kill -0 "$1" 2>/dev/null
}

# wait_gone PID [TRIES]: until PID no longer exists; TRIES x 0.1 s,
# default 100 (10 s).
wait_gone() {
    retry "${2:-100}" 0.1 gone "$1" && return 0
    echo "process $1 still running" >&2
    return 1
}

# wait_exit PID: wait for PID (a child of this shell, so not in a $(...))
# and set RC to its exit status; fails when it still runs after 10 s.
wait_exit() {
    RC=0
    wait_gone "$1" 100 || return 1
    wait "$1" || RC=$?
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

# has_child PID: PID has a child (pgrep: children_of is too slow to poll a
# one-second script).
has_child() {
    pgrep -P "$1" >/dev/null
}

# childless PID: PID has no child, not even a zombie.
childless() {
    [ -z "$(children_of "$1")" ]
}

# wait_child PID: until PID has a child (say, the CGI script runs); 10 s.
wait_child() {
    retry 500 0.02 has_child "$1" && return 0
    echo "process $1 never started a child" >&2
    return 1
}

# wait_childless PID [TRIES]: until PID has no child left (its scripts are
# reaped); TRIES x 0.1 s, default 50 (5 s).
wait_childless() {
    retry "${2:-50}" 0.1 childless "$1" && return 0
    echo "process $1 still has children: $(children_of "$1" | tr '\n' ' ')" >&2
    return 1
}

# has_lines FILE N: FILE has at least N lines.
has_lines() {
    [ "$(wc -l <"$1")" -ge "$2" ]
}

# wait_lines FILE N: until FILE has at least N lines (a run writing one
# line per answer is that far); 300 s.
wait_lines() {
    retry 6000 0.05 has_lines "$1" "$2" && return 0
    echo "$1 never reached $2 lines" >&2
    return 1
}

# sleep_ms MS: sleep MS milliseconds (none when MS <= 0).
sleep_ms() {
    [ "$1" -gt 0 ] && sleep "$(printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)))"
    return 0
}

# queued SOCK: a connection waits in the accept queue of the listening
# unix socket SOCK (ss' Recv-Q of a listening socket is that queue).
queued() {
    [ "$(ss -xlnH 2>/dev/null | awk -v p="$1" '$5 == p {print $3; exit}')" -ge 1 ] 2>/dev/null
}

# wait_queued SOCK: until a connection waits to be accepted on SOCK.
wait_queued() {
    retry 200 0.05 queued "$1" && return 0
    echo "no connection queued on $1" >&2
    return 1
}
