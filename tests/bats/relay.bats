#!/usr/bin/env bats
# relay.bats - running the legacy CGI script (RFC 3875) as plain CGI and as
# a FastCGI Responder: environment hygiene, bodies both ways without
# deadlock, bounded memory, answers relayed, every error status, killing and
# reaping.

load lib/load

CGI="$FIXTURES/cgi"

setup() {
    redis_start
    export RATELIMIT_LIMIT=1000 RATELIMIT_WINDOW=1m
}

teardown() {
    fcgi_stop
    redis_stop
}

# post_cgi FILE VAR=VALUE...: plain CGI POST of FILE's bytes.
post_cgi() {
    local f="$1"
    shift
    cgi_run REQUEST_METHOD=POST CONTENT_TYPE=application/octet-stream \
        "CONTENT_LENGTH=$(stat -c %s "$f")" "$@" <"$f"
}

@test "env: no HTTP_PROXY, no RATELIMIT_*, no password; CGI/1.1, PATH, cwd" {
    redis_stop
    export REDIS_REQUIREPASS=s3cret-pass-42
    redis_start
    export RATELIMIT_REDIS_PASSWORD=s3cret-pass-42 RATELIMIT_BACKEND="$CGI/env.sh"
    run cgi_run HTTP_PROXY=http://evil.example:3128 HTTP_X_THING=kept </dev/null
    assert_equal "$(status_of)" 200
    assert_output --partial "HTTP_X_THING=kept"
    assert_output --partial "GATEWAY_INTERFACE=CGI/1.1"
    assert_output --partial "CWD=$CGI"
    refute_output --partial "HTTP_PROXY"
    refute_output --partial "RATELIMIT_"
    refute_output --partial "s3cret"
    # The check really ran against the password-protected Redis.
    [ -n "$(rcli --scan --pattern 'ratelimit:*')" ]
    ! grep -q s3cret "$T/stderr"
    fcgi_start 1
    run fcgi_req HTTP_PROXY=http://evil.example:3128 SCRIPT_FILENAME=/nonexistent </dev/null
    assert_equal "$(status_of)" 200
    assert_output --partial "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    refute_output --partial "HTTP_PROXY"
    refute_output --partial "RATELIMIT_"
    refute_output --partial "s3cret"
    refute_output --partial "FCGI_ROLE"
    ! grep -q s3cret "$T/fcgi-stderr" "$T/fcgi.log"
}

@test "cgi: 8 MB POST to a script that prints 200 KB before reading: no deadlock" {
    head -c 8388608 /dev/urandom >"$T/body"
    want=$(sha256_of "$T/body")
    export RATELIMIT_BACKEND="$CGI/echo-sha.sh"
    run post_cgi "$T/body"
    assert_equal "$(status_of)" 200
    assert_output --partial "len=8388608 sha256=$want"
}

@test "fastcgi: 8 MB POST both ways, and a body without CONTENT_LENGTH is spooled exactly" {
    head -c 8388608 /dev/urandom >"$T/body"
    want=$(sha256_of "$T/body")
    export RATELIMIT_BACKEND="$CGI/echo-sha.sh"
    fcgi_start 1
    run fcgi_req REQUEST_METHOD=POST CONTENT_LENGTH=8388608 <"$T/body"
    assert_equal "$(status_of)" 200
    assert_output --partial "len=8388608 sha256=$want"
    # Chunked upload: the server knows no length and sends none.
    run fcgi_req REQUEST_METHOD=POST <"$T/body"
    assert_equal "$(status_of)" 200
    assert_output --partial "len=8388608 sha256=$want"
}

@test "fastcgi: a 50 MB answer streams with the worker's RSS under 20 MB" {
    export RATELIMIT_BACKEND="$CGI/big.sh"
    fcgi_start 1
    fcgi_req QUERY_STRING=50 </dev/null >"$T/answer"
    size=$(stat -c %s "$T/answer")
    [ "$size" -gt 52428800 ] && [ "$size" -lt 52430000 ]
    pid=$(fcgi_pids | head -n1)
    hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status")
    echo "worker VmHWM ${hwm} kB"
    # Under TEST_PREFIX (valgrind) the worker's RSS is valgrind's own.
    [ -n "${TEST_PREFIX:-}" ] || [ "$hwm" -lt 20480 ]
}

@test "answers: Location without Status is a 302, a custom Status and headers are kept" {
    export RATELIMIT_BACKEND="$CGI/redirect.sh"
    run cgi_run </dev/null
    assert_equal "$(status_of)" 302
    assert_equal "$(header_of Location)" "http://example.org/moved"
    [ -n "$(header_of X-RateLimit-Remaining)" ]
    export RATELIMIT_BACKEND="$CGI/status.sh"
    fcgi_start 1
    run fcgi_req </dev/null
    assert_equal "$(printf '%s\n' "$output" | head -n1 | tr -d '\r')" "Status: 418 I'm a teapot"
    assert_equal "$(header_of X-Custom)" kept
    assert_equal "$(header_of Connection)" ""
    assert_equal "$(header_of RateLimit-Policy)" '"default";q=1000;w=60'
    assert_equal "$(body_of)" teapot
}

@test "answers: the script's stderr goes to the FastCGI error stream, never the answer" {
    export RATELIMIT_BACKEND="$CGI/stderr.sh"
    fcgi_start 1
    run fcgi_req </dev/null
    assert_equal "$(status_of)" 200
    assert_equal "$(body_of)" "stdout only"
    refute_output --partial "a log line"
    grep -q "stderr.sh: a log line" "$T/fcgi-stderr"
}

@test "which script: SCRIPT_FILENAME (proxy:fcgi:// stripped), PATH_TRANSLATED, never ourselves" {
    fcgi_start 1
    run fcgi_req "SCRIPT_FILENAME=proxy:fcgi://localhost$CGI/ok.cgi" </dev/null
    assert_equal "$(status_of)" 200
    assert_output --partial "ok 127.0.0.1"
    run fcgi_req "PATH_TRANSLATED=$CGI/ok.cgi/extra/path" </dev/null
    assert_equal "$(status_of)" 200
    assert_output --partial "ok 127.0.0.1"
    run fcgi_req "SCRIPT_FILENAME=$RL_BIN" </dev/null
    assert_equal "$(status_of)" 403
}

@test "errors: 404 missing, 403 not executable, 403 outside SCRIPT_ROOT, each JSON" {
    fcgi_start 1
    run fcgi_req "SCRIPT_FILENAME=$CGI/no-such.cgi" </dev/null
    assert_equal "$(status_of)" 404
    [ -n "$(json_field message)" ]
    run fcgi_req "SCRIPT_FILENAME=$CGI/notexec.sh" </dev/null
    assert_equal "$(status_of)" 403
    [ -n "$(json_field message)" ]
    refute_output --partial "must not run"
    # RATELIMIT_SCRIPT_ROOT is the process's alone (a parameter is ignored).
    fcgi_stop
    RATELIMIT_SCRIPT_ROOT=/usr/lib/cgi-bin fcgi_start 1
    run fcgi_req "SCRIPT_FILENAME=$CGI/ok.cgi" </dev/null
    assert_equal "$(status_of)" 403
    refute_output --partial "ok 127.0.0.1"
    fcgi_stop
    RATELIMIT_SCRIPT_ROOT="$CGI" fcgi_start 1
    run fcgi_req "SCRIPT_FILENAME=$CGI/../cgi/ok.cgi" </dev/null
    assert_equal "$(status_of)" 200
}

@test "errors: no headers, bad Status, no output, bad interpreter are 502 JSON" {
    fcgi_start 1
    for s in noheaders.sh badstatus.sh silent.sh badinterp.sh; do
        run fcgi_req "SCRIPT_FILENAME=$CGI/$s" </dev/null
        echo "$s: $output"
        assert_equal "$(status_of)" 502
        [ -n "$(json_field message)" ]
    done
}

@test "timeout: a hung script is killed at the deadline (504) with its whole group" {
    export RATELIMIT_BACKEND="$CGI/hang.sh" RATELIMIT_BACKEND_TIMEOUT=3
    run cgi_run "HANG_PIDFILE=$T/hang.pids" </dev/null
    assert_equal "$(status_of)" 504
    [ -n "$(json_field message)" ]
    read -r sh_pid sleep_pid <"$T/hang.pids"
    for p in $sh_pid $sleep_pid; do
        # Gone, or at most a zombie waiting for init to reap it.
        state=$(awk '{ sub(/^.*\) /, ""); print $1 }' "/proc/$p/stat" 2>/dev/null || true)
        [ -z "$state" ] || [ "$state" = Z ]
    done
}

@test "timeout after the headers were sent ends the answer without a second header block" {
    export RATELIMIT_BACKEND="$CGI/hang.sh" RATELIMIT_BACKEND_TIMEOUT=3
    fcgi_start 1
    run fcgi_req QUERY_STRING=headers </dev/null
    assert_equal "$(status_of)" 200
    assert_equal "$(printf '%s\n' "$output" | grep -c '^Status:')" 1
    refute_output --partial '"message"'
}

@test "a client that goes away kills the script; 200 requests leave no zombie, no fd" {
    export RATELIMIT_BACKEND="$CGI/big.sh"
    fcgi_start 1
    pid=$(fcgi_pids | head -n1)
    fcgi_req -c 100000 QUERY_STRING=1000 </dev/null >/dev/null || true
    wait_childless "$pid"
    export RATELIMIT_BACKEND="$CGI/ok.cgi"
    fcgi_stop
    fcgi_start 1
    pid=$(fcgi_pids | head -n1)
    fcgi_req </dev/null >/dev/null
    # The answer ends when the script closes its output, so the worker may
    # still be reaping a script (its pipes open) when the client has the
    # answer: count the fds once it has no child. A leak only grows them.
    wait_childless "$pid" || true
    before=$(fd_count "$pid")
    for i in $(seq 200); do
        body="x=$i"
        printf '%s' "$body" | fcgi_req REQUEST_METHOD=POST CONTENT_LENGTH=${#body} >/dev/null
    done
    wait_childless "$pid" || true
    after=$(fd_count "$pid")
    echo "fds: $before before, $after after"
    [ "$after" -le "$before" ]
    assert_equal "$(zombies_of "$pid")" ""
    assert_equal "$(children_of "$pid")" ""
}

@test "env: from the request alone: a password found in a value drops nothing" {
    redis_stop
    export REDIS_REQUIREPASS=1
    redis_start
    export RATELIMIT_REDIS_PASSWORD=1 RATELIMIT_BACKEND="$CGI/env.sh"
    fcgi_start 1
    run fcgi_req HTTP_X_ONE=1 </dev/null
    assert_equal "$(status_of)" 200
    assert_output --partial "REMOTE_ADDR=127.0.0.1"
    assert_output --partial "HTTP_X_ONE=1"
    refute_output --partial "RATELIMIT_"
}

@test "answers: a local Location without Status has no status line (local redirect); Status 100 is 502" {
    fcgi_start 1
    run fcgi_req "SCRIPT_FILENAME=$CGI/localredirect.sh" </dev/null
    assert_equal "$(printf '%s\n' "$output" | head -n1 | tr -d '\r')" "Location: /downloads/file.txt"
    assert_equal "$(printf '%s\n' "$output" | grep -c '^Status:')" 0
    [ -n "$(header_of X-RateLimit-Remaining)" ]
    run fcgi_req "SCRIPT_FILENAME=$CGI/continue.sh" </dev/null
    assert_equal "$(status_of)" 502
}

@test "answers: ISINDEX query words are the script's arguments" {
    export RATELIMIT_BACKEND="$CGI/args.sh"
    fcgi_start 1
    run fcgi_req 'QUERY_STRING=one+two%20three' </dev/null
    assert_equal "$(body_of)" "$(printf 'argc=2\n[one]\n[two three]')"
    run fcgi_req 'QUERY_STRING=a=b+c' </dev/null
    assert_equal "$(body_of)" "argc=0"
}

@test "answers: the script's stderr is cut after 64 KiB, with one line saying so" {
    export RATELIMIT_BACKEND="$CGI/chatty.sh"
    fcgi_start 1
    run fcgi_req </dev/null
    assert_equal "$(status_of)" 200
    assert_equal "$(body_of)" ok
    grep -q "script stderr cut after 65536 bytes" "$T/fcgi-stderr" "$T/fcgi.log"
    # Exactly the first 64 KiB of the e's reached the log.
    [ "$(grep -ao 'eeeeeeeeee*' "$T/fcgi-stderr" | tr -d '\n' | wc -c)" -eq 65536 ]
}

@test "body: over RATELIMIT_MAX_BODY is 413 JSON, declared or not" {
    grep -q RATELIMIT_MAX_BODY "$RL_SRCDIR/src/config.c" ||
        skip "config.c does not read RATELIMIT_MAX_BODY yet (test_cgirelay covers the relay)"
    export RATELIMIT_BACKEND="$CGI/echo-sha.sh" RATELIMIT_MAX_BODY=1k
    fcgi_start 1
    head -c 2000 /dev/zero >"$T/body"
    run fcgi_req REQUEST_METHOD=POST CONTENT_LENGTH=2000 <"$T/body"
    assert_equal "$(status_of)" 413
    [ -n "$(json_field message)" ]
    run fcgi_req REQUEST_METHOD=POST <"$T/body"
    assert_equal "$(status_of)" 413
    head -c 1000 /dev/zero >"$T/body"
    run fcgi_req REQUEST_METHOD=POST CONTENT_LENGTH=1000 <"$T/body"
    assert_equal "$(status_of)" 200
}

@test "the answer ends when the script closes its output; the script is reaped after" {
    export RATELIMIT_BACKEND="$CGI/linger.sh"
    fcgi_start 1
    pid=$(fcgi_pids | head -n1)
    run fcgi_req "LINGER_MARK=$T/linger.done" "LINGER_GATE=$T/linger.gate" </dev/null
    assert_equal "$(status_of)" 200
    assert_equal "$(body_of)" answered
    # The answer came while the script still ran (it waits for the gate).
    [ ! -e "$T/linger.done" ]
    touch "$T/linger.gate"
    retry 400 0.1 test -e "$T/linger.done"
    wait_childless "$pid"
}

@test "which script: a folder swapped for a symlink after the check never runs a script outside it" {
    mkdir -p "$T/root/d" "$T/outside"
    cp "$CGI/where.sh" "$T/root/d/x.cgi"
    cp "$CGI/where.sh" "$T/outside/x.cgi"
    export RATELIMIT_SCRIPT_ROOT="$T/root"
    fcgi_start 1
    pid=$(fcgi_pids | head -n1)
    # A POST whose body comes later: the script is checked first, and the
    # swap lands between the check and the exec, every time.
    mkfifo "$T/body"
    fcgi_req "SCRIPT_FILENAME=$T/root/d/x.cgi" REQUEST_METHOD=POST <"$T/body" >"$T/answer" &
    req=$!
    exec 4>"$T/body"
    # Until the worker holds the checked folder open (bounded: without
    # such an fd the swap simply comes later).
    for i in $(seq 50); do
        find "/proc/$pid/fd" -lname "$T/root/d" 2>/dev/null | grep -q . && break
        sleep 0.1
    done
    mv "$T/root/d" "$T/root/d.real"
    ln -s "$T/outside" "$T/root/d"
    echo body >&4
    exec 4>&-
    wait "$req" || true
    cat "$T/answer"
    # where.sh prints its folder: the one checked (renamed since), never
    # the symlink's target.
    grep -q "^ran in $T/root/d.real" "$T/answer"
    ! grep -q "outside" "$T/answer"
}
