#!/usr/bin/env bats
# buckets.bats - the bucket store (RATELIMIT_STORE=buckets) against a real
# private Redis: exact limits with a ttl, the shape of the shared hashes
# (PREFIX NAME ":{" first 3 hex of the client's hash "}:" window index or
# epoch, field = the other 61 hex; see id_hash in lib/hash.bash), that they
# expire, that a request cannot switch stores, and the refusal of
# sliding-log. The keys store, one key per client, is algorithms.bats.

load lib/load

setup() {
    redis_start
    export RATELIMIT_BACKEND="$FIXTURES/cgi/ok.cgi"
    export RATELIMIT_STORE=buckets RATELIMIT_LIMIT=3 RATELIMIT_WINDOW=1m
}

teardown() {
    fcgi_stop
    redis_stop
}

# limit_send QUOTA: QUOTA + 2 requests, their answers in OUTS[1..], then
# Redis looked at (snapshot) right away; T_DENY is the snapshot's time.
limit_send() {
    local i
    OUTS=()
    for ((i = 1; i <= $1 + 2; i++)); do
        OUTS[i]=$(cgi_run </dev/null)
    done
    snapshot
    T_DENY=$SNAP_MS
}

# limit_cycle QUOTA MAXTTL: QUOTA requests admitted with remaining
# QUOTA-1 .. 0, the next two denied with 1 <= ttl <= MAXTTL = Retry-After.
# The requests go out first and are checked afterwards (limit_send,
# unless SENT=1 says it was done), so that checking takes no window time.
# Sets $output to the first denial.
limit_cycle() {
    local quota="$1" maxttl="$2" i
    [ "${SENT:-0}" = 1 ] || limit_send "$quota"
    for ((i = 1; i <= quota + 2; i++)); do
        output=${OUTS[i]}
        if [ "$i" -le "$quota" ]; then
            assert_equal "$(status_of)" 200
            assert_output --partial "ok 127.0.0.1"
            assert_equal "$(header_of X-RateLimit-Remaining)" "$((quota - i))"
        else
            assert_denied "$maxttl"
        fi
    done
    output=${OUTS[quota + 1]}
}

# snapshot: one look at all of Redis in one script, so that no key expires
# halfway through it. Sets SNAP_MS, the server's clock in ms, and SNAP, one
# line per key, sorted: "KEY TYPE ENCODING PTTL [FIELD VALUE]...".
snapshot() {
    local out
    out=$(rcli EVAL "local t = redis.call('TIME')
        local out = { t[1] .. ' ' .. t[2] }
        for _, k in ipairs(redis.call('KEYS', '*')) do
            local line = { k, redis.call('TYPE', k).ok,
                redis.call('OBJECT', 'ENCODING', k), redis.call('PTTL', k) }
            if line[2] == 'hash' then
                for _, v in ipairs(redis.call('HGETALL', k)) do line[#line + 1] = v end
            end
            out[#out + 1] = table.concat(line, ' ')
        end
        return out" 0)
    SNAP_MS=$(head -n1 <<<"$out" | awk '{ printf "%.0f", $1 * 1000 + int($2 / 1000) }')
    SNAP=$(tail -n +2 <<<"$out" | sort)
}

# bucket_keys [NAME]: the bucket hashes of 127.0.0.1 for rule NAME.
bucket_keys() {
    local h
    h=$(id_hash ip 127.0.0.1)
    rcli --scan --pattern "ratelimit:${1:-default}:{${h:0:3}}:*" | sort
}

# bucket_lines [NAME]: the lines of SNAP for the bucket hashes of 127.0.0.1
# under rule NAME.
bucket_lines() {
    local h
    h=$(id_hash ip 127.0.0.1)
    grep "^ratelimit:${1:-default}:{${h:0:3}}:[0-9]* " <<<"$SNAP" || true
}

# assert_bucket LINE PERIOD_MS COUNT: LINE (of SNAP) is the key
# PREFIX NAME ":{" h[0..3) "}:" N with N = floor(SNAP_MS / PERIOD_MS) (or
# the one before, across a boundary), a listpack hash expiring within 2
# periods whose only field is h[3..64) holding COUNT (or, with COUNT
# "tat", a number).
assert_bucket() {
    local period="$2" count="$3" h key type enc pttl field v rest n
    read -r key type enc pttl field v rest <<<"$1"
    h=$(id_hash ip 127.0.0.1)
    n=${key##*:}
    [[ "$key" =~ ^ratelimit:[a-z-]+:[{]${h:0:3}[}]:[0-9]+$ ]]
    [ "$n" -eq $((SNAP_MS / period)) ] || [ "$n" -eq $((SNAP_MS / period - 1)) ]
    assert_equal "$type" hash
    assert_equal "$enc" listpack
    assert_equal "$field" "${h:3}"
    assert_equal "$rest" ""
    [ "$pttl" -gt 0 ]
    [ "$pttl" -le $((2 * period)) ]
    if [ "$count" = tat ]; then
        [[ "$v" =~ ^[0-9.e+]+$ ]]
    else
        assert_equal "$v" "$count"
    fi
}

# window_cycle ALGO MAXTTL: LIMIT=3 per 3 s window of ALGO from a
# window's start: limit_cycle 3 MAXTTL, then one bucket hash holding 3.
# Its requests must all fall in one window: on a machine so loaded that
# they did not (the snapshot after them is past the window's end), Redis
# is emptied and the cycle starts again at the next window, up to 3 times.
# Sets KEY_NOW (its name).
window_cycle() {
    local p=$((3000 * TS)) start try
    export RATELIMIT_ALGORITHM=$1 RATELIMIT_WINDOW=$((3 * TS))s
    for try in 1 2 3; do
        period_start "$p"
        start=$(($(now_ms) / p * p))
        limit_send 3
        [ "$SNAP_MS" -lt $((start + p)) ] && break
        echo "window_cycle: the requests took past the window's end (try $try)" >&2
        rcli FLUSHALL >/dev/null
    done
    SENT=1 limit_cycle 3 "$2"
    assert_equal "$(bucket_lines | wc -l)" 1
    assert_bucket "$(bucket_lines)" $((3000 * TS)) 3
    KEY_NOW=$(bucket_lines | cut -d' ' -f1)
}

@test "buckets, fixed-window: LIMIT admitted, then 429 with ttl; one shared hash per window, expiring at its end" {
    window_cycle fixed-window $((3 * TS))
    [ "$(cut -d' ' -f4 <<<"$SNAP")" -le $((3000 * TS)) ]
    assert_equal "$(wc -l <<<"$SNAP")" 1
    # Windows are aligned to the clock: the next one admits again.
    sleep_ms $((T_DENY + $(json_field ttl) * 1000 - $(now_ms)))
    run cgi_run </dev/null
    assert_equal "$(status_of)" 200
    assert_equal "$(header_of X-RateLimit-Remaining)" 2
}

@test "buckets, sliding-window: LIMIT admitted, then 429; counts per aligned window, hashes live two windows" {
    window_cycle sliding-window $((6 * TS))
    # In the next window the previous one still weighs: no full quota
    # while it weighs more than 1 of 3 (its first two thirds). A machine
    # so slow that the request came later proves nothing either way.
    next=$(((${KEY_NOW##*:} + 1) * 3000 * TS))
    sleep_ms $((next - $(now_ms) + 100))
    run cgi_run </dev/null
    snapshot
    if [ $((SNAP_MS - next)) -lt $((2000 * TS)) ]; then
        [ "$(status_of)" = 429 ] || [ "$(header_of X-RateLimit-Remaining)" -lt 2 ]
        # The previous window's hash lives on into this one.
        grep -q "^$KEY_NOW hash " <<<"$SNAP"
    fi
}

@test "buckets, token-bucket: BURST at once, then 429; TAT in the epoch's hash; recovers after ttl" {
    # Capacity 3, one token per 3 s: tau = 9 s, epochs of 9 s.
    export RATELIMIT_ALGORITHM=token-bucket RATELIMIT_LIMIT=1 RATELIMIT_WINDOW=$((3 * TS))s RATELIMIT_BURST=3
    # The five requests must come within one token's 3 s (else the fourth
    # is admitted by right): on a machine too loaded, again, up to 3 times.
    local t0 try
    for try in 1 2 3; do
        period_start $((9000 * TS))
        t0=$(now_ms)
        limit_send 3
        [ $((SNAP_MS - t0)) -lt $((3000 * TS)) ] && break
        echo "# the requests took $((SNAP_MS - t0)) ms, past a token's time (try $try)" >&3
        rcli FLUSHALL >/dev/null
    done
    SENT=1 limit_cycle 3 $((3 * TS))
    [ "$(bucket_lines | wc -l)" -ge 1 ]
    assert_bucket "$(bucket_lines | tail -n1)" $((9000 * TS)) tat
    sleep_ms $((T_DENY + $(json_field ttl) * 1000 - $(now_ms)))
    run cgi_run </dev/null
    elapsed=$(($(now_ms) - T_DENY))
    assert_equal "$(status_of)" 200
    # One token is back; no more than one per 3 s since the denial.
    [ "$(header_of X-RateLimit-Remaining)" -le $((elapsed / (3000 * TS))) ]
}

@test "buckets: rules mixing algorithms, each in its own hashes; a denial charges none" {
    export RATELIMIT_RULES="burst ip 2/$((10 * TS))s; tokens ip 10/1m token-bucket burst=5"
    period_start $((10000 * TS))
    for want in 200 200 429; do
        run cgi_run </dev/null
        assert_equal "$(status_of)" "$want"
    done
    assert_equal "$(json_field policy)" burst
    h=$(id_hash ip 127.0.0.1)
    kb=$(bucket_keys burst)
    # tokens: epochs of 30 s; the two charges may straddle two of them.
    kt=$(bucket_keys tokens | tail -n1)
    assert_equal "$(rcli HGET "$kb" "${h:3}")" 2
    [ -n "$(rcli HGET "$kt" "${h:3}")" ]
    [ "$(rcli DBSIZE)" -ge 2 ]
    [ "$(rcli DBSIZE)" -le 3 ]
}

@test "buckets: many clients share 4096 hashes per window, each a listpack" {
    # sliding-window: hashes live two windows, so none expires during the
    # test even when it crosses a window's end.
    export RATELIMIT_LIMIT=100 RATELIMIT_WINDOW=1h RATELIMIT_ALGORITHM=sliding-window
    for i in $(seq 1 60); do
        cgi_run REMOTE_ADDR=10.9.0.$i </dev/null >/dev/null
    done
    n=0
    fields=0
    for k in $(rcli --scan --pattern 'ratelimit:default:*'); do
        [[ "$k" =~ ^ratelimit:default:[{][0-9a-f]{3}[}]:[0-9]+$ ]]
        assert_equal "$(rcli OBJECT ENCODING "$k")" listpack
        [ "$(rcli PTTL "$k")" -gt 0 ]
        fields=$((fields + $(rcli HLEN "$k")))
        n=$((n + 1))
    done
    assert_equal "$fields" 60
    [ "$n" -le 60 ]
}

@test "buckets: a per-request RATELIMIT_STORE is ignored: the layout is the process's (FastCGI)" {
    export RATELIMIT_STORE=keys
    fcgi_start 1
    for want in 200 200 200 429; do
        run fcgi_req RATELIMIT_STORE=buckets </dev/null
        assert_equal "$(status_of)" "$want"
    done
    assert_equal "$(bucket_keys)" ""
    [ "$(rcli GET "$(ip_key 127.0.0.1)")" -ge 3 ]
}

@test "buckets: sliding-log is refused: --check fails naming it, a request gets 500" {
    export RATELIMIT_ALGORITHM=sliding-log
    run check_run
    assert_equal "$status" 1
    assert_output --partial "RATELIMIT_STORE"
    assert_output --partial "sliding-log"
    run cgi_run </dev/null
    assert_equal "$(status_of)" 500
    [ -n "$(json_field message)" ]
    refute_output --partial "ok 127.0.0.1"
    grep -F RATELIMIT_STORE "$T/stderr" | grep -qF sliding-log
    assert_equal "$(rcli DBSIZE)" 0
    # A rule among others too.
    unset RATELIMIT_ALGORITHM
    export RATELIMIT_RULES="a ip 5/1m; b ip 5/1m sliding-log"
    run check_run
    assert_equal "$status" 1
    assert_output --partial "rule 'b'"
}

@test "buckets: --check loads the scripts and names the layout" {
    run check_run
    assert_equal "$status" 0
    assert_output --partial "store=buckets"
}

# evalsha_calls: how many EVALSHA Redis ran since CONFIG RESETSTAT.
evalsha_calls() {
    rcli INFO commandstats | sed -n 's/^cmdstat_evalsha:calls=\([0-9]*\),.*/\1/p'
}

# skewed OFFSET: TEST_PREFIX for a filter whose clock is OFFSET (faketime's
# "+3h", "-3h") off the server's; the monotonic clock left alone.
skewed() {
    echo "env FAKETIME_DONT_FAKE_MONOTONIC=1 ASAN_OPTIONS=verify_asan_link_order=0 faketime -f $1 ${TEST_PREFIX:-}"
}

@test "buckets: a filter whose clock is hours off the server's: the script names the server's time, the filter asks again, then limits exactly" {
    command -v faketime >/dev/null || fail "faketime is not installed (Debian: faketime)"
    local algo
    # epochs of 1 hour for every algorithm (token-bucket: burst 3 of 3/1h),
    # the clocks 3 hours apart: more than an epoch either way
    export RATELIMIT_LOG=debug RATELIMIT_WINDOW=1h
    for algo in fixed-window sliding-window token-bucket; do
        rcli FLUSHALL >/dev/null
        export RATELIMIT_ALGORITHM=$algo
        # not in the hour's last minute: the requests stay in one window
        [ $(($(now_ms) % 3600000)) -lt 3540000 ] || period_start 3600000
        # the scripts loaded first (no NOSCRIPT in the counts below)
        run check_run
        assert_success
        # A worker 3 hours ahead: its first check declares hashes of
        # epochs the server is not in, is answered with the server's time,
        # and is asked again; the worker keeps the difference: 4 requests
        # (the 4th denied; a 5th would be the denial cache's), 5 EVALSHA.
        : >"$T/fcgi-stderr"
        TEST_PREFIX=$(skewed +3h) fcgi_start 1
        rcli CONFIG RESETSTAT >/dev/null
        for want in 200 200 200 429; do
            run fcgi_req </dev/null
            assert_equal "$(status_of)" "$want"
        done
        assert_equal "$(evalsha_calls)" 5
        assert_equal "$(grep -c "clock is -10\(79\|80\)[0-9]\{4\} ms from this host's" "$T/fcgi-stderr")" 1
        fcgi_stop
        # Plain CGI 3 hours behind: every process learns it anew, two
        # EVALSHA per request; the count goes on from the worker's.
        : >"$T/stderr"
        rcli CONFIG RESETSTAT >/dev/null
        TEST_PREFIX=$(skewed -3h) run cgi_run </dev/null
        assert_equal "$(status_of)" 429
        assert_equal "$(evalsha_calls)" 2
        grep -q "clock is 10\(79\|80\)[0-9]\{4\} ms from this host's" "$T/stderr"
        # the client's hashes are of the server's epochs, not of the
        # filter's clock
        snapshot
        [ -n "$(bucket_lines)" ]
        while read -r k _; do
            k=${k##*:}
            echo "$algo: hash of epoch $k, server at $SNAP_MS ms" >&2
            [ $((k * 3600000)) -le "$SNAP_MS" ]
            [ "$SNAP_MS" -lt $(((k + 2) * 3600000)) ]
        done <<<"$(bucket_lines)"
        run cat "$T/stderr" "$T/fcgi-stderr"
        refute_output --partial "keeps moving"
    done
}
