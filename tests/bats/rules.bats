#!/usr/bin/env bats
# rules.bats - RATELIMIT_RULES against a real private Redis: every rule is
# checked and a denial charges none, the headers and the JSON name the rule
# that decided, a rule keyed by a missing header is left out, a shadow
# rule never denies, is charged only when it admits and is named in no
# header, and a malformed rule is a 500 for that request only.
#
# Windows are N * TS seconds (TS: see lib/load.bash); sleeps only move past
# a ttl the test has read.

load lib/load

setup() { engine_setup; }
teardown() { engine_teardown; }

# rules_req: one request of the rules test, then "GET burst ZCARD hourly
# tat" of its keys ($kb, $kh, $kt) at once; the answer goes to $out.
rules_req() {
    out=$(cgi_run HTTP_X_API_KEY=k1 </dev/null)
    snap="$(rcli GET "$kb") $(rcli ZCARD "$kh") $(rcli GET "$kt")"
}

@test "rules: every rule checked, a denial charges none, headers and JSON describe the right rule" {
    # tokens refills slowly (one every 12 s): a charged bucket's key lives
    # that long, so a key that vanished between two reads is a charge
    # undone by time, never by a denial (100/1m expired in 0.6 s a token
    # and failed the comparisons below on a loaded machine).
    export RATELIMIT_RULES="burst ip 2/$((4 * TS))s; hourly ip 3/$((60 * TS))s sliding-log; tokens header:X-Api-Key 5/1m token-bucket burst=50"
    policy="\"burst\";q=2;w=$((4 * TS)), \"hourly\";q=3;w=$((60 * TS)), \"tokens\";q=50;w=60"
    kb=$(ip_key 127.0.0.1 burst)
    kh=$(ip_key 127.0.0.1 hourly)
    kt=$(header_key k1 tokens)

    # Requests first, Redis read right after each: checks come later.
    rules_req; o1=$out
    rules_req; o2=$out; s2=$snap
    states=$(key_states)
    rules_req; o3=$out; s3=$snap

    output=$o1
    assert_equal "$(status_of)" 200
    assert_equal "$(header_of RateLimit-Policy)" "$policy"
    # Most restrictive when allowed: burst has 1 left, hourly 2, tokens 49.
    [[ "$(header_of RateLimit)" == '"burst";r=1;t='* ]]
    assert_equal "$(header_of X-RateLimit-Limit)" 2
    assert_equal "$(header_of X-RateLimit-Remaining)" 1
    output=$o2
    assert_equal "$(status_of)" 200
    [[ "$(header_of RateLimit)" == '"burst";r=0;t='* ]]
    assert_equal "$(wc -l <<<"$states")" 3
    keys_all_expire "$states"
    [[ "$s2" == "2 2 @"[0-9]* ]]

    # Denied by burst: hourly and tokens are not charged.
    output=$o3
    assert_equal "$(status_of)" 429
    ttl=$(json_field ttl)
    [ "$ttl" -ge 1 ]
    [ "$ttl" -le $((4 * TS)) ]
    assert_equal "$(header_of Retry-After)" "$ttl"
    assert_equal "$(json_field policy)" burst
    assert_equal "$(json_field limit)" 2
    assert_equal "$(json_field window)" $((4 * TS))
    assert_equal "$(header_of RateLimit-Policy)" "$policy"
    assert_equal "$(header_of RateLimit)" "\"burst\";r=0;t=$ttl"
    assert_equal "$s3" "$s2"

    # After burst's window, hourly is the most restrictive (0 left).
    sleep "$ttl"
    rules_req; o4=$out; s4=$snap
    rules_req; o5=$out; s5=$snap
    output=$o4
    assert_equal "$(status_of)" 200
    [[ "$(header_of RateLimit)" == '"hourly";r=0;t='* ]]
    assert_equal "$(header_of X-RateLimit-Limit)" 3
    assert_equal "$(header_of X-RateLimit-Remaining)" 0
    [[ "$s4" == "1 3 @"[0-9]* ]]

    # Denied by hourly: burst (which alone would admit) is not charged.
    output=$o5
    assert_equal "$(status_of)" 429
    ttl=$(json_field ttl)
    [ "$ttl" -ge $((40 * TS)) ]
    [ "$ttl" -le $((60 * TS)) ]
    assert_equal "$(header_of Retry-After)" "$ttl"
    assert_equal "$(json_field policy)" hourly
    assert_equal "$(json_field limit)" 3
    assert_equal "$(json_field window)" $((60 * TS))
    assert_equal "$(header_of RateLimit-Policy)" "$policy"
    # t (the whole quota back: the newest entry leaves) may exceed ttl.
    [[ "$(header_of RateLimit)" == "\"hourly\";r=0;t="* ]]
    [ "$(rl_t)" -ge "$ttl" ]
    assert_equal "$s5" "$s4"
}

@test "rules: a rule keyed by a missing header with KEY_MISSING=skip is left out of the headers" {
    export RATELIMIT_RULES='per-ip ip 5/1m; per-key header:X-Api-Key 2/1m' RATELIMIT_KEY_MISSING=skip
    run cgi_run </dev/null
    assert_equal "$(status_of)" 200
    assert_equal "$(header_of RateLimit-Policy)" '"per-ip";q=5;w=60'
    assert_equal "$(rcli DBSIZE)" 1
    run cgi_run HTTP_X_API_KEY=k2 </dev/null
    assert_equal "$(header_of RateLimit-Policy)" '"per-ip";q=5;w=60, "per-key";q=2;w=60'
    [[ "$(header_of RateLimit)" == '"per-key";r=1;t='* ]]
}

@test "rules: a malformed rule answers 500 JSON, names the rule in the log, touches nothing" {
    bad=('per-ip ip 10/1m; api header:X-Api-Key ten/1m'
        'per-ip ip 10/1m; slow ip 5/1m leaky-bucket'
        'per-ip ip 10/1m burst=3'
        'per-ip ip 10/1m; per-ip ip 5/1s'
        'lonely-rule ip'
        'per-ip ip 10/1m shadow shadow'
        'per-ip ip 10/1m shadow token-bucket')
    name=('api header:X-Api-Key ten/1m' 'slow ip 5/1m leaky-bucket' 'per-ip ip 10/1m burst=3'
        "duplicate rule name 'per-ip'" 'lonely-rule ip' 'shadow given twice'
        'shadow must be the last word')
    for i in "${!bad[@]}"; do
        : >"$T/stderr"
        run cgi_run "RATELIMIT_RULES=${bad[$i]}" </dev/null
        assert_equal "$(status_of)" 500
        assert_equal "$(header_of Content-Type)" application/json
        [ -n "$(json_field message)" ]
        refute_output --partial "ok 127.0.0.1"
        grep -F "RATELIMIT_RULES" "$T/stderr" | grep -qF "${name[$i]}"
    done
    assert_equal "$(rcli DBSIZE)" 0
}

@test "rules: a malformed per-request RULES fails that request only (FastCGI)" {
    export RATELIMIT_RULES='per-ip ip 5/1m'
    fcgi_start 1
    run fcgi_req </dev/null
    assert_equal "$(status_of)" 200
    assert_equal "$(header_of RateLimit-Policy)" '"per-ip";q=5;w=60'
    run fcgi_req 'RATELIMIT_RULES=per-ip ip 5/1m; x ip 0/1m' </dev/null
    assert_equal "$(status_of)" 500
    [ -n "$(json_field message)" ]
    grep -F RATELIMIT_RULES "$T/fcgi-stderr" | grep -qF 'x ip 0/1m'
    run fcgi_req </dev/null
    assert_equal "$(status_of)" 200
    assert_equal "$(header_of X-RateLimit-Remaining)" 3
}

# shadow_count NAME: what rule NAME holds for 127.0.0.1 (fixed-window): the
# key's count (keys store), or the sum of the client's fields in the
# rule's hashes (RATELIMIT_STORE=buckets); 0 when none.
shadow_count() {
    local h k n=0 v
    if [ "${RATELIMIT_STORE:-keys}" = buckets ]; then
        h=$(id_hash ip 127.0.0.1)
        for k in $(rcli --scan --pattern "ratelimit:$1:{${h:0:3}}:*"); do
            v=$(rcli HGET "$k" "${h:3}")
            n=$((n + ${v:-0}))
        done
        echo "$n"
    else
        v=$(rcli GET "$(ip_key 127.0.0.1 "$1")")
        echo "${v:-0}"
    fi
}

# shadow_cycle: a tight shadow rule (probe, 2), a loose real one (real, 4)
# and a loose shadow one (wide, 100), fixed-window. Past probe's limit the
# requests still get 200, no header names a shadow rule, probe is no
# longer charged and the log says it would deny; at real's limit real
# denies and nothing is charged, shadow rules included.
shadow_cycle() {
    local i counts want
    export RATELIMIT_RULES="probe ip 2/$((10 * TS))s shadow; real ip 4/$((10 * TS))s; wide ip 100/$((10 * TS))s shadow"
    # Buckets' windows are aligned to the clock: start the requests at one's start.
    [ "${RATELIMIT_STORE:-keys}" != buckets ] || period_start $((10000 * TS))
    for i in 1 2 3 4 5 6; do
        : >"$T/stderr"
        run cgi_run </dev/null
        counts="$(shadow_count probe) $(shadow_count real) $(shadow_count wide)"
        refute_output --partial probe
        refute_output --partial wide
        if [ "$i" -le 4 ]; then
            assert_equal "$(status_of)" 200
            assert_output --partial "ok 127.0.0.1"
            assert_equal "$(header_of RateLimit-Policy)" "\"real\";q=4;w=$((10 * TS))"
            assert_equal "$(header_of X-RateLimit-Remaining)" $((4 - i))
            want="$((i < 2 ? i : 2)) $i $i"
            assert_equal "$counts" "$want"
            if [ "$i" -le 2 ]; then
                assert_equal "$(grep -c 'shadow:' "$T/stderr")" 0
            else
                assert_equal "$(grep -c 'shadow: would deny client 127.0.0.1: rule probe (2/' "$T/stderr")" 1
                assert_equal "$(grep -c 'shadow:' "$T/stderr")" 1
            fi
        else
            # real denies: nothing charged, and no shadow line.
            assert_denied $((10 * TS))
            assert_equal "$(json_field policy)" real
            assert_equal "$(header_of RateLimit)" "\"real\";r=0;t=$(json_field ttl)"
            assert_equal "$counts" "2 4 4"
            assert_equal "$(grep -c 'shadow:' "$T/stderr")" 0
        fi
    done
}

@test "rules: a shadow rule never denies, is not charged past its limit, sends no header, logs would-deny; a real denial charges none" {
    shadow_cycle
}

@test "rules: a shadow rule with RATELIMIT_STORE=buckets behaves the same" {
    export RATELIMIT_STORE=buckets
    shadow_cycle
}

@test "rules: a shadow token-bucket over its limit is not charged (no tat beyond the bucket)" {
    export RATELIMIT_RULES="probe ip 2/1h token-bucket shadow; real ip 100/1m"
    run cgi_run </dev/null
    run cgi_run </dev/null
    tat=$(rcli GET "$(ip_key 127.0.0.1 probe)")
    for i in 1 2 3; do
        run cgi_run </dev/null
        assert_equal "$(status_of)" 200
        refute_output --partial probe
    done
    # Still the tat of two requests: the three over the limit left it alone.
    assert_equal "$(rcli GET "$(ip_key 127.0.0.1 probe)")" "$tat"
    assert_equal "$(rcli GET "$(ip_key 127.0.0.1 real)")" 5
    assert_equal "$(grep -c 'shadow: would deny client 127.0.0.1: rule probe' "$T/stderr")" 3
}
