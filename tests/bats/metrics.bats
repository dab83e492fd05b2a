#!/usr/bin/env bats
# metrics.bats - the host's counters (RATELIMIT_METRICS_FILE): what each
# request adds, --metrics and RATELIMIT_METRICS_PATH in Prometheus' text
# format (checked by promtool), exact counts under lighttpd and Apache with
# a worker killed on the way, the one warn line per denial episode, a
# counter file truncated under a worker (no SIGBUS death, a new file), and
# the rows kept for configured rules against names chosen by requests.

load lib/load

setup() {
    engine_setup
    LT_PID=
}

teardown() {
    apache_log_if_failed
    lighttpd_stop
    apache_stop
    listen_stop
    engine_teardown
    kill_leftovers
}

# metric NAME{LABELS}: the value of one series of `--metrics` (0 when the
# series is absent), e.g. metric 'fcgi_ratelimit_requests_total{rule="default",decision="denied"}'.
metric() {
    local text
    text=$(env -i RATELIMIT_METRICS_FILE="$RATELIMIT_METRICS_FILE" "$RL_BIN" --metrics) || return 1
    series_of "$1" <<<"$text"
}

# series_of NAME{LABELS}: that series' value in the text on stdin, or 0.
series_of() {
    awk -v s="$1" '$1 == s { v = $2 } END { print (v == "" ? 0 : v) }'
}

# requests RULE DECISION: fcgi_ratelimit_requests_total of that pair.
requests() {
    metric "fcgi_ratelimit_requests_total{rule=\"$1\",decision=\"$2\"}"
}

@test "metrics: allowed and denied per rule, exactly; --metrics passes promtool check metrics" {
    command -v promtool >/dev/null || skip "promtool is not installed (Debian: prometheus)"
    for i in 1 2 3 4 5; do
        run cgi_run </dev/null
    done
    assert_equal "$(requests default allowed)" 3
    assert_equal "$(requests default denied)" 2
    assert_equal "$(requests default denied_cache)" 0
    # near the limit: the third request left 0 of 3 (at or past 0.8 used)
    assert_equal "$(metric 'fcgi_ratelimit_near_limit_total{rule="default"}')" 1
    # the script ran 3 times, answered 2xx; 5 Redis round trips
    assert_equal "$(metric 'fcgi_ratelimit_script_responses_total{class="2xx"}')" 3
    assert_equal "$(metric fcgi_ratelimit_script_duration_seconds_count)" 3
    assert_equal "$(metric fcgi_ratelimit_redis_duration_seconds_count)" 5
    run "$RL_BIN" --metrics
    assert_success
    assert_output --partial '# TYPE fcgi_ratelimit_requests_total counter'
    printf '%s\n' "$output" >"$T/m.prom"
    run promtool check metrics <"$T/m.prom"
    assert_success
    # the counter file: 0600, ours
    assert_equal "$(stat -c '%a %U' "$RATELIMIT_METRICS_FILE")" "600 $(id -un)"
}

@test "metrics: no label holds a client identity; a header key is logged as a hash prefix only" {
    export RATELIMIT_RULES='per-key header:X-Api-Key 1/1m' RATELIMIT_LOG=info
    run cgi_run HTTP_X_API_KEY=s3cret-value-42 </dev/null
    run cgi_run HTTP_X_API_KEY=s3cret-value-42 REMOTE_ADDR=192.0.2.77 </dev/null
    assert_equal "$(status_of)" 429
    run "$RL_BIN" --metrics
    refute_output --partial s3cret
    refute_output --partial 192.0.2.77
    refute_output --partial 127.0.0.1
    assert_equal "$(requests per-key denied)" 1
    # the log names the key by 8 hex digits of its hash, never its value
    run grep -F 'denied client key ' "$T/stderr"
    assert_success
    assert_output --regexp 'client key [0-9a-f]{8}: rule per-key'
    run grep -F s3cret "$T/stderr"
    assert_failure
}

@test "metrics: the denial cache's answers count as denied_cache, dry run as would_deny" {
    fcgi_start 1
    for i in 1 2 3 4 5 6; do
        run fcgi_req
    done
    assert_equal "$(requests default allowed)" 3
    assert_equal "$(requests default denied)" 1
    assert_equal "$(requests default denied_cache)" 2
    fcgi_stop
    rcli FLUSHALL >/dev/null
    export RATELIMIT_DRY_RUN=1 RATELIMIT_NAME=dry
    for i in 1 2 3 4 5; do
        run cgi_run </dev/null
        assert_equal "$(status_of)" 200
    done
    assert_equal "$(requests dry allowed)" 3
    assert_equal "$(requests dry would_deny)" 2
    assert_equal "$(requests dry denied)" 0
}

@test "metrics: a shadow rule over its limit counts would_deny, never denied, and admits" {
    export RATELIMIT_RULES='probe ip 1/1m shadow; real ip 3/1m' RATELIMIT_BODY=problem
    for i in 1 2 3 4; do
        run cgi_run </dev/null
    done
    assert_equal "$(status_of)" 429
    # the answer names the rule that denied, never the shadow rule
    assert_equal "$(body_of | jq -c '."violated-policies"')" '["real"]'
    refute_output --partial probe
    assert_equal "$(requests probe allowed)" 1
    assert_equal "$(requests probe would_deny)" 3
    assert_equal "$(requests probe denied)" 0
    assert_equal "$(requests real allowed)" 3
    assert_equal "$(requests real denied)" 1
}

@test "metrics: RATELIMIT_NEAR_LIMIT sets the fraction counted as near the limit" {
    export RATELIMIT_LIMIT=10 RATELIMIT_NEAR_LIMIT=0.5 RATELIMIT_LOG=info
    for i in 1 2 3 4 5 6 7; do
        run cgi_run </dev/null
    done
    # requests 5, 6 and 7 leave 5, 4 and 3 of 10: half or more used
    assert_equal "$(metric 'fcgi_ratelimit_near_limit_total{rule="default"}')" 3
    assert_equal "$(log_count 'info: near limit: client 127.0.0.1 rule default' "$T/stderr")" 3
}

@test "metrics: Redis down: RATELIMIT_FAIL's answers, errors by kind, the breaker" {
    export RATELIMIT_REDIS_URL="redis://127.0.0.1:$(free_port)/0"
    run cgi_run </dev/null
    assert_equal "$(status_of)" 200
    assert_equal "$(metric 'fcgi_ratelimit_fail_answers_total{mode="open"}')" 1
    assert_equal "$(metric 'fcgi_ratelimit_redis_errors_total{kind="connect"}')" 1
    assert_equal "$(metric fcgi_ratelimit_breaker_opens_total)" 1
    assert_equal "$(metric 'fcgi_ratelimit_breaker_state{state="open"}')" 1
    export RATELIMIT_FAIL=closed
    run cgi_run </dev/null
    assert_equal "$(status_of)" 503
    assert_equal "$(metric 'fcgi_ratelimit_fail_answers_total{mode="closed"}')" 1
    assert_equal "$(metric 'fcgi_ratelimit_error_responses_total{status="503"}')" 1
    # nothing was decided, so no rule counted anything
    assert_equal "$(requests default allowed)" 0
}

@test "metrics: a Redis timeout and a NOSCRIPT reload are counted by kind" {
    fcgi_start 1
    run fcgi_req
    assert_equal "$(requests default allowed)" 1
    rcli SCRIPT FLUSH >/dev/null
    run fcgi_req
    assert_equal "$(metric 'fcgi_ratelimit_redis_errors_total{kind="noscript_reload"}')" 1
    # a server that stops answering: the worker's call times out
    fcgi_stop
    export RATELIMIT_REDIS_TIMEOUT_MS=200
    fcgi_start 1
    kill -STOP "$REDIS_PID"
    run fcgi_req
    kill -CONT "$REDIS_PID"
    assert_equal "$(metric 'fcgi_ratelimit_redis_errors_total{kind="timeout"}')" 1
}

@test "metrics: relay outcomes: script status classes, our 404, a timeout and its kill" {
    export RATELIMIT_BACKEND_TIMEOUT=3s RATELIMIT_LIMIT=100
    unset RATELIMIT_BACKEND
    run cgi_run SCRIPT_FILENAME="$FIXTURES/cgi/status.sh" </dev/null
    assert_equal "$(status_of)" 418
    run cgi_run SCRIPT_FILENAME="$FIXTURES/cgi/ok.cgi" </dev/null
    run cgi_run SCRIPT_FILENAME="$T/nope.cgi" </dev/null
    assert_equal "$(status_of)" 404
    # scripts that exit without an answer: our 502, and no kill counted
    run cgi_run SCRIPT_FILENAME="$FIXTURES/cgi/silent.sh" </dev/null
    assert_equal "$(status_of)" 502
    assert_equal "$(metric fcgi_ratelimit_script_kills_total)" 0
    assert_equal "$(metric 'fcgi_ratelimit_error_responses_total{status="502"}')" 1
    run cgi_run SCRIPT_FILENAME="$FIXTURES/cgi/hang.sh" </dev/null
    assert_equal "$(status_of)" 504
    assert_equal "$(metric 'fcgi_ratelimit_script_responses_total{class="4xx"}')" 1
    assert_equal "$(metric 'fcgi_ratelimit_script_responses_total{class="2xx"}')" 1
    assert_equal "$(metric 'fcgi_ratelimit_error_responses_total{status="404"}')" 1
    assert_equal "$(metric 'fcgi_ratelimit_error_responses_total{status="504"}')" 1
    assert_equal "$(metric fcgi_ratelimit_script_timeouts_total)" 1
    assert_equal "$(metric fcgi_ratelimit_script_kills_total)" 1
    # a script that answered, then ran past its deadline: its answer is
    # counted (it reached the client), and so are the timeout and the kill
    run cgi_run SCRIPT_FILENAME="$FIXTURES/cgi/hang.sh" QUERY_STRING=headers </dev/null
    assert_equal "$(status_of)" 200
    assert_equal "$(metric 'fcgi_ratelimit_script_responses_total{class="2xx"}')" 2
    assert_equal "$(metric 'fcgi_ratelimit_error_responses_total{status="504"}')" 1
    assert_equal "$(metric fcgi_ratelimit_script_timeouts_total)" 2
    assert_equal "$(metric fcgi_ratelimit_script_kills_total)" 2
}

@test "metrics: RATELIMIT_METRICS_PATH serves the text to loopback only (not what a trusted proxy forwards), never counted or limited" {
    command -v promtool >/dev/null || skip "promtool is not installed (Debian: prometheus)"
    export RATELIMIT_METRICS_PATH=/fcgi-ratelimit/metrics RATELIMIT_LIMIT=1
    run cgi_run REQUEST_URI=/app </dev/null
    for i in 1 2 3; do
        run cgi_run REQUEST_URI='/fcgi-ratelimit/metrics?x=1' </dev/null
        assert_equal "$(status_of)" 200
        assert_equal "$(header_of Content-Type)" 'text/plain; version=0.0.4; charset=utf-8'
    done
    body_of >"$T/m.prom"
    run promtool check metrics <"$T/m.prom"
    assert_success
    assert_equal "$(series_of 'fcgi_ratelimit_requests_total{rule="default",decision="allowed"}' <"$T/m.prom")" 1
    run cgi_run REQUEST_URI=/fcgi-ratelimit/metrics REMOTE_ADDR=192.0.2.1 </dev/null
    assert_equal "$(status_of)" 403
    run cgi_run REQUEST_URI=/fcgi-ratelimit/metrics HTTP_X_FORWARDED_FOR=127.0.0.1 REMOTE_ADDR=192.0.2.1 </dev/null
    assert_equal "$(status_of)" 403
    # a reverse proxy on loopback, trusted: what it forwards is refused,
    # its own requests (no X-Forwarded-For) are served
    export RATELIMIT_TRUSTED_PROXIES=127.0.0.1/32
    run cgi_run REQUEST_URI=/fcgi-ratelimit/metrics HTTP_X_FORWARDED_FOR=198.51.100.7 </dev/null
    assert_equal "$(status_of)" 403
    run cgi_run REQUEST_URI=/fcgi-ratelimit/metrics </dev/null
    assert_equal "$(status_of)" 200
    unset RATELIMIT_TRUSTED_PROXIES
    export RATELIMIT_METRICS_ALLOW=192.0.2.0/24
    run cgi_run REQUEST_URI=/fcgi-ratelimit/metrics REMOTE_ADDR=192.0.2.1 </dev/null
    assert_equal "$(status_of)" 200
    # nothing of the above counted: one request, the first
    assert_equal "$(requests default allowed)" 1
    assert_equal "$(requests default denied)" 0
    assert_equal "$(metric 'fcgi_ratelimit_error_responses_total{status="403"}')" 0
}

@test "metrics: an Authorizer does not serve RATELIMIT_METRICS_PATH: the URL is limited like any other" {
    export RATELIMIT_METRICS_PATH=/fcgi-ratelimit/metrics RATELIMIT_LIMIT=1
    fcgi_start 1
    run fcgi_req -a REQUEST_URI=/fcgi-ratelimit/metrics </dev/null
    assert_equal "$(status_of)" 200
    refute_output --partial fcgi_ratelimit_requests_total
    run fcgi_req -a REQUEST_URI=/fcgi-ratelimit/metrics </dev/null
    assert_equal "$(status_of)" 429
    assert_equal "$(requests default allowed)" 1
    assert_equal "$(($(requests default denied) + $(requests default denied_cache)))" 1
}

@test "metrics: one warn line per denial episode across 4 workers, info for the rest" {
    export RATELIMIT_LOG=info RATELIMIT_LIMIT=2
    fcgi_start 4
    for i in $(seq 12); do
        run fcgi_req REMOTE_ADDR=192.0.2.5
    done
    assert_equal "$(requests default allowed)" 2
    assert_equal "$(($(requests default denied) + $(requests default denied_cache)))" 10
    assert_equal "$(log_count 'warn: denied client 192.0.2.5: rule default \(2 per 60000 ms\)' "$T/fcgi-stderr" "$T/fcgi.log")" 1
    # another client starts an episode of its own
    run fcgi_req REMOTE_ADDR=192.0.2.6
    run fcgi_req REMOTE_ADDR=192.0.2.6
    run fcgi_req REMOTE_ADDR=192.0.2.6
    assert_equal "$(log_count 'warn: denied client 192.0.2.6' "$T/fcgi-stderr" "$T/fcgi.log")" 1
}

@test "metrics: the counter file truncated under a worker: it answers on, says so once, and counts again in a new file" {
    export RATELIMIT_METRICS_PATH=/fcgi-ratelimit/metrics
    worker_start "$T/w.sock"
    run fcgi_req </dev/null
    assert_equal "$(status_of)" 200
    assert_equal "$(requests default allowed)" 1
    # what any script of our uid may do to the file; root's --metrics
    # refuses the empty file with a message (no SIGBUS) and leaves it
    truncate -s0 "$RATELIMIT_METRICS_FILE"
    run env -i RATELIMIT_METRICS_FILE="$RATELIMIT_METRICS_FILE" "$RL_BIN" --metrics
    assert_equal "$status" 1
    assert_output --partial "$RATELIMIT_METRICS_FILE: not an fcgi-ratelimit metrics file"
    assert_equal "$(stat -c %s "$RATELIMIT_METRICS_FILE")" 0
    # the next request's add faults: it goes on in private memory, and
    # after the request the worker makes a new file and counts there
    run fcgi_req </dev/null
    assert_equal "$(status_of)" 200
    [ "$(stat -c %s "$RATELIMIT_METRICS_FILE")" -gt 0 ]
    run fcgi_req </dev/null
    assert_equal "$(status_of)" 200
    run fcgi_req </dev/null
    assert_equal "$(status_of)" 429
    # the same worker answered all: no SIGBUS death
    kill -0 "$W_PID"
    assert_equal "$(fcgi_pids)" "$W_PID"
    # the new file holds what came after: one allowed, one denied
    assert_equal "$(requests default allowed)" 1
    assert_equal "$(($(requests default denied) + $(requests default denied_cache)))" 1
    run fcgi_req REQUEST_URI=/fcgi-ratelimit/metrics </dev/null
    assert_equal "$(status_of)" 200
    assert_output --partial 'fcgi_ratelimit_requests_total{rule="default",decision="allowed"} 1'
    # one warn line, in the process's own log
    assert_equal "$(log_count 'warn: metrics: counter file .* was truncated by someone' "$T/worker.log")" 1
    assert_equal "$(log_count 'truncated by someone' "$T/worker.log" "$T/fcgi-stderr")" 1
    # a file cut to a few bytes is replaced by the next process started
    truncate -s5 "$RATELIMIT_METRICS_FILE"
    run cgi_run REMOTE_ADDR=192.0.2.9 </dev/null
    assert_equal "$(status_of)" 200
    [ "$(stat -c %s "$RATELIMIT_METRICS_FILE")" -gt 5 ]
    assert_equal "$(requests default allowed)" 1
}

@test "metrics: --listen: the counter file truncated under forked workers: none dies, and they count again in a new file" {
    local w
    export RATELIMIT_LIMIT=1000
    listen_start "unix:$T/l.sock" --workers 2
    wait_workers 2
    w=$(workers | sort | paste -sd,)
    FCGI_SOCK="$T/l.sock"
    run fcgi_req </dev/null
    assert_equal "$(status_of)" 200
    truncate -s0 "$RATELIMIT_METRICS_FILE"
    for i in $(seq 12); do
        run fcgi_req </dev/null
        assert_equal "$(status_of)" 200
    done
    # the same two workers served them all, none killed by SIGBUS
    assert_equal "$(workers | sort | paste -sd,)" "$w"
    refute grep -q "killed by signal" "$T/listen.log"
    # a new file, counting (the request that found the file truncated is
    # each worker's private count, lost)
    [ "$(stat -c %s "$RATELIMIT_METRICS_FILE")" -gt 0 ]
    [ "$(requests default allowed)" -ge 10 ]
    [ "$(log_count 'truncated by someone' "$T/listen.log")" -ge 1 ]
}

@test "metrics: rule names chosen by requests leave the last 32 rows to configured rules" {
    export RATELIMIT_LIMIT=1000
    fcgi_start 1
    # per-request RATELIMIT_NAME: 130 names, more than the 128 rows
    for i in $(seq 130); do
        fcgi_req -a RATELIMIT_NAME="req$i" </dev/null >/dev/null
    done
    # requests' names take rows 1..95 only (row 0: the worker's own
    # "default"); the rest count as (other), with a warning each
    assert_equal "$(requests req95 allowed)" 1
    assert_equal "$(requests req96 allowed)" 0
    assert_equal "$(requests '(other)' allowed)" 35
    grep -q 'rule req96 counted as (other): metrics: the 96 rule rows open to names from requests are taken' "$T/fcgi-stderr"
    # a process started later still registers its own rule
    export RATELIMIT_NAME=mine
    run cgi_run </dev/null
    assert_equal "$(status_of)" 200
    assert_equal "$(requests mine allowed)" 1
    assert_equal "$(requests '(other)' allowed)" 35
}

@test "metrics: --metrics without a counter file says so and fails" {
    run env -i RATELIMIT_METRICS_FILE="$T/none" "$RL_BIN" --metrics
    assert_failure
    assert_output --partial "$T/none"
}

# exact_through BASE FINDER...: 60 requests, then the worker whose PID
# the command FINDER... prints is killed (SIGKILL: nothing it did is
# flushed or saved), then 60 more: the served counters read 100 allowed
# and 20 denied (LIMIT 100), and pass promtool.
exact_through() {
    local base="$1" text victim
    shift
    burst_codes "$base/cgi-bin/ok.cgi" 60 6 >"$T/codes"
    victim=$("$@")
    [ -n "$victim" ]
    kill -9 "$victim"
    burst_codes "$base/cgi-bin/ok.cgi" 60 6 >>"$T/codes"
    assert_exact_split "$T/codes" 100 20
    text=$(curl -sS --max-time 20 "$base/fcgi-ratelimit/metrics")
    printf '%s\n' "$text" >"$T/served.prom"
    run promtool check metrics <"$T/served.prom"
    assert_success
    assert_equal "$(series_of 'fcgi_ratelimit_requests_total{rule="default",decision="allowed"}' <"$T/served.prom")" 100
    assert_equal "$(($(series_of 'fcgi_ratelimit_requests_total{rule="default",decision="denied"}' <"$T/served.prom") + \
        $(series_of 'fcgi_ratelimit_requests_total{rule="default",decision="denied_cache"}' <"$T/served.prom")))" 20
    assert_equal "$(series_of 'fcgi_ratelimit_script_responses_total{class="2xx"}' <"$T/served.prom")" 100
}

@test "metrics: through lighttpd, 4 workers, one killed: the served counters are exact" {
    command -v lighttpd >/dev/null || skip "lighttpd is not installed"
    command -v promtool >/dev/null || skip "promtool is not installed (Debian: prometheus)"
    unset RATELIMIT_BACKEND RATELIMIT_LIMIT RATELIMIT_WINDOW
    www_setup
    PORT=$(free_port)
    lighttpd_start 50-fcgi-ratelimit.conf
    exact_through "http://127.0.0.1:$PORT" sock_holder "$T/fcgi-ratelimit.sock-1"
    # the path as lighttpd decodes it is the metrics path too; a path
    # below it never reaches the metrics process (lighttpd's 404)
    http "http://127.0.0.1:$PORT/fcgi-ratelimit/%6Detrics"
    [ "$(http_status)" = 200 ]
    assert_output --partial 'fcgi_ratelimit_requests_total{rule="default",decision="allowed"} 100'
    http "http://127.0.0.1:$PORT/fcgi-ratelimit/metrics/x"
    [ "$(http_status)" = 404 ]
    http "http://127.0.0.1:$PORT/fcgi-ratelimit/metricsx"
    [ "$(http_status)" = 404 ]
    assert_equal "$(log_count 'redis' "$T/lighttpd-error.log")" 0
}

@test "metrics: through Apache mod_fcgid, a worker killed: the served counters are exact" {
    command -v apache2 >/dev/null || skip "apache2 is not installed"
    command -v promtool >/dev/null || skip "promtool is not installed (Debian: prometheus)"
    [ "$(id -u)" -eq 0 ] || skip "starting apache2 as User www-data needs root"
    unset RATELIMIT_BACKEND RATELIMIT_LIMIT RATELIMIT_WINDOW
    www_setup
    apache_setup
    apache_start fcgi-ratelimit-fcgid.conf
    exact_through "http://127.0.0.1:$PORT" fcgid_worker
    # the counter file is the workers' (www-data), and root's --metrics
    # reads it
    assert_equal "$(stat -c %U "$T/apache-metrics/metrics")" www-data
    run env -i RATELIMIT_METRICS_FILE="$T/apache-metrics/metrics" "$RL_BIN" --metrics
    assert_success
    assert_output --partial 'decision="allowed"} 100'
}

# sock_holder PATH: a PID of a process holding the unix socket PATH.
sock_holder() {
    FCGI_SOCK="$1" fcgi_pids | head -n1
}

# fcgid_worker: a PID of one of mod_fcgid's filter processes (this test's
# copy of the binary, under $T).
fcgid_worker() {
    local p
    for p in /proc/[0-9]*; do
        [ "$(readlink "$p/exe" 2>/dev/null)" = "$T/bin/fcgi-ratelimit" ] && { echo "${p#/proc/}"; return 0; }
    done
    return 1
}

# readme_block NAME: the fenced block between README's NAME:begin and
# NAME:end markers, without the fences.
readme_block() {
    sed -n "/<!-- $1:begin -->/,/<!-- $1:end -->/p" "$RL_SRCDIR/README.md" | sed '1,2d;$d' | sed '$d'
}

@test "metrics: README's scrape config and alerting rules pass promtool" {
    command -v promtool >/dev/null || skip "promtool is not installed (Debian: prometheus)"
    readme_block scrape-config >"$T/prometheus.yml"
    readme_block alert-rules >"$T/rules.yml"
    grep -q 'metrics_path: /fcgi-ratelimit/metrics' "$T/prometheus.yml"
    run promtool check config "$T/prometheus.yml"
    assert_success
    run promtool check rules "$T/rules.yml"
    assert_success
    assert_output --partial "SUCCESS: 2 rules found"
    # the rules use only metric names the filter has
    run cgi_run </dev/null
    for name in $(grep -o 'fcgi_ratelimit_[a-z_]*' "$T/rules.yml" | sort -u); do
        run "$RL_BIN" --metrics
        assert_output --partial "# TYPE $name "
    done
}
