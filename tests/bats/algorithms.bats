#!/usr/bin/env bats
# algorithms.bats - issue 5 against a real private Redis: the four
# algorithms' admit/deny/recover boundaries, the fixed-window edge burst,
# RATELIMIT_RULES (a denial charges no rule), who the client is (trusted
# proxies, X-Forwarded-For with opaque entries, IPv6 prefixes,
# IPv4-mapped, non-addresses, Authorization schemes),
# RATELIMIT_ALLOW / RATELIMIT_DENY, dry run and header selection.
#
# Windows are 2-3 s (times TS, below). Sleeps only move past a boundary
# the test has read (a ttl, a PTTL); every assertion is on an outcome,
# never on a duration.

load helpers

# Windows are N * TS seconds (TS: see helpers.bash).

setup() {
    redis_start
    export RATELIMIT_BACKEND="$FIXTURES/cgi/ok.cgi"
    export RATELIMIT_LIMIT=3 RATELIMIT_WINDOW=1m
}

teardown() {
    fcgi_stop
    redis_stop
}

# ip_key ADDR [NAME]: the Redis key of an ip identity (SPEC: PREFIX NAME
# ":" sha256("ip\0" ADDR) in hex).
ip_key() {
    echo "ratelimit:${2:-default}:$(printf 'ip\0%s' "$1" | sha256sum | cut -c1-64)"
}

# xff_key ENTRY [NAME]: the Redis key of an opaque client, an X-Forwarded-For
# entry that is no address (sha256("xff\0" ENTRY)).
xff_key() {
    echo "ratelimit:${2:-default}:$(printf 'xff\0%s' "$1" | sha256sum | cut -c1-64)"
}

# header_key VALUE [NAME]: the Redis key of a header identity.
header_key() {
    echo "ratelimit:${2:-default}:$(printf 'header\0%s' "$1" | sha256sum | cut -c1-64)"
}

# key_states: one line "TYPE PTTL SIZE" per key in Redis, sorted. SIZE:
# ZCARD of a sorted set, HLEN of a hash; for a string, the fixed-window
# count, the c of a sliding-window "s c p", or "tat" for a token-bucket
# "@tat". Taken right
# after the requests it describes, before anything slow, since the keys
# of a 3 s window may be gone by the time the answers are checked.
key_states() {
    local k t size
    for k in $(rcli --scan --pattern '*'); do
        t=$(rcli TYPE "$k")
        case $t in
        string)
            size=$(rcli GET "$k")
            case $size in
            @*) size=tat ;;
            *' '*) size=$(cut -d' ' -f2 <<<"$size") ;;
            esac
            ;;
        zset) size=$(rcli ZCARD "$k") ;;
        hash) size=$(rcli HLEN "$k") ;;
        *) size=? ;;
        esac
        echo "$t $(rcli PTTL "$k") $size"
    done | sort
}

# keys_all_expire [STATES]: every key (of STATES, output of key_states,
# or of Redis now) has a TTL (PTTL > 0), and there is at least one key.
keys_all_expire() {
    local states="${1-$(key_states)}" t pttl size n=0
    while read -r t pttl size; do
        if ! [ "$pttl" -gt 0 ]; then
            echo "a $t key has PTTL $pttl" >&2
            return 1
        fi
        n=$((n + 1))
    done <<<"$states"
    [ "$n" -ge 1 ]
}

# rl_r: the r= parameter of the RateLimit header in $output.
rl_r() {
    header_of RateLimit | sed -n 's/.*;r=\([0-9]*\).*/\1/p'
}

# rl_t: the t= parameter of the RateLimit header in $output.
rl_t() {
    header_of RateLimit | sed -n 's/.*;t=\([0-9]*\).*/\1/p'
}

# sleep_ms MS: sleep MS milliseconds (MS may be <= 0).
sleep_ms() {
    [ "$1" -gt 0 ] && sleep "$(printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)))"
    return 0
}

# cycle QUOTA MAXTTL TYPE SIZE: with the RATELIMIT_* of the shell, QUOTA
# requests back to back are admitted with the remaining count going
# QUOTA-1 .. 0 in both header families; the next three are denied with
# 1 <= ttl <= MAXTTL and Retry-After = ttl, and then Redis holds one key,
# a TYPE of SIZE (denials charged nothing), with a TTL; after sleeping ttl
# seconds a request is admitted again. The requests are sent first and
# checked afterwards, so that checking takes no window time. Sets
# STATES_AFTER: key_states right after the admitted request.
cycle() {
    local quota="$1" maxttl="$2" type="$3" size="$4" i ttl states keys
    local -a outs
    for ((i = 1; i <= quota + 3; i++)); do
        outs[i]=$(cgi_run </dev/null)
    done
    states=$(key_states)
    keys=$(rcli --scan --pattern '*')
    for ((i = 1; i <= quota; i++)); do
        output=${outs[i]}
        assert_equal "$(status_of)" 200
        assert_output --partial "ok 127.0.0.1"
        assert_equal "$(header_of X-RateLimit-Limit)" "$quota"
        assert_equal "$(header_of X-RateLimit-Remaining)" "$((quota - i))"
        assert_equal "$(rl_r)" "$((quota - i))"
    done
    for ((; i <= quota + 3; i++)); do
        output=${outs[i]}
        assert_denied "$maxttl"
        assert_equal "$(json_field remaining)" 0
        assert_equal "$(json_field limit)" "$quota"
        assert_equal "$(header_of X-RateLimit-Remaining)" 0
        assert_equal "$(rl_r)" 0
        # The quota is whole again no earlier than a request fits.
        [ "$(rl_t)" -ge "$ttl" ]
    done
    # One key per client and rule, of the algorithm's type, expiring.
    assert_equal "$(wc -l <<<"$states")" 1
    assert_equal "${states%% *}" "$type"
    assert_equal "${states##* }" "$size"
    keys_all_expire "$states"
    assert_equal "$keys" "$(ip_key 127.0.0.1)"
    output=${outs[quota + 1]}
    sleep "$(json_field ttl)"
    run cgi_run </dev/null
    STATES_AFTER=$(key_states)
    assert_equal "$(status_of)" 200
    assert_output --partial "ok 127.0.0.1"
    keys_all_expire "$STATES_AFTER"
}

# ----------------------------------------------------------- algorithms

@test "fixed-window: LIMIT admitted, remaining counts down, ttl = Retry-After, recovers after ttl" {
    export RATELIMIT_ALGORITHM=fixed-window RATELIMIT_LIMIT=3 RATELIMIT_WINDOW=$((3 * TS))s
    cycle 3 $((3 * TS)) string 3
    # A denied request neither counted nor extended the window: the new
    # window holds the one request just admitted.
    assert_equal "${STATES_AFTER##* }" 1
}

@test "sliding-log: LIMIT admitted, denials not logged, never more than LIMIT entries" {
    export RATELIMIT_ALGORITHM=sliding-log RATELIMIT_LIMIT=3 RATELIMIT_WINDOW=$((3 * TS))s
    cycle 3 $((3 * TS)) zset 3
    # Hammer it: only admitted requests are logged, the set stays <= LIMIT.
    key=$(ip_key 127.0.0.1)
    denied=0
    for i in 1 2 3 4 5 6; do
        out=$(cgi_run </dev/null)
        n=$(rcli ZCARD "$key")
        [ "$n" -ge 1 ]
        [ "$n" -le 3 ]
        if [[ "$out" == "Status: 429"* ]]; then denied=$((denied + 1)); fi
    done
    [ "$denied" -ge 1 ]
}

@test "sliding-window: LIMIT admitted, exact remaining, ttl within two windows, recovers" {
    export RATELIMIT_ALGORITHM=sliding-window RATELIMIT_LIMIT=3 RATELIMIT_WINDOW=$((3 * TS))s
    cycle 3 $((6 * TS)) string 3
    # O(1) memory: one string "s c p", whatever the traffic.
    for i in 1 2 3 4 5 6; do run cgi_run </dev/null; done
    [[ "$(rcli GET "$(ip_key 127.0.0.1)")" =~ ^[0-9]+\ [0-9]+\ [0-9]+$ ]]
    assert_equal "$(rcli DBSIZE)" 1
}

@test "token-bucket: BURST admitted at once, then one token per WINDOW/LIMIT" {
    # Capacity 3, refill 1 per 3 s.
    export RATELIMIT_ALGORITHM=token-bucket RATELIMIT_LIMIT=1 RATELIMIT_WINDOW=$((3 * TS))s RATELIMIT_BURST=3
    cycle 3 $((3 * TS)) string tat
}

@test "token-bucket: BURST defaults to LIMIT" {
    # Capacity 2, refill 2 per 6 s: one token per 3 s.
    export RATELIMIT_ALGORITHM=token-bucket RATELIMIT_LIMIT=2 RATELIMIT_WINDOW=$((6 * TS))s
    unset RATELIMIT_BURST
    cycle 2 $((3 * TS)) string tat
}

@test "a key left by another algorithm or by the old hash layout is replaced, never an error" {
    export RATELIMIT_LIMIT=2 RATELIMIT_WINDOW=1m
    key=$(ip_key 127.0.0.1)
    # Each algorithm against: the hashes of the layout before strings
    # (sliding-window {s c p}, token-bucket {tat}), a sorted set, and each
    # other algorithm's string (one that would deny, were it its own).
    declare -A old=([hash-sw]="HSET $key s 1 c 5 p 5" [hash-tb]="HSET $key tat 99999999999999999"
        [sliding-log]="ZADD $key 1 x" [fixed-window]="SET $key 5"
        [token-bucket]="SET $key @99999999999999999" [sliding-window]="SET $key 99999999999999999 5 5")
    for algo in fixed-window sliding-log sliding-window token-bucket; do
        for owner in "${!old[@]}"; do
            [ "$owner" != "$algo" ] || continue
            rcli DEL "$key" >/dev/null
            # shellcheck disable=SC2086
            rcli ${old[$owner]} >/dev/null
            run cgi_run RATELIMIT_ALGORITHM=$algo </dev/null
            assert_equal "$(status_of)" 200
            assert_equal "$(header_of X-RateLimit-Remaining)" 1
            run cgi_run RATELIMIT_ALGORITHM=$algo </dev/null
            assert_equal "$(status_of)" 200
            run cgi_run RATELIMIT_ALGORITHM=$algo </dev/null
            assert_equal "$(status_of)" 429
            keys_all_expire
        done
    done
}

# edge_req fw|sl|tb: one request of the edge-burst schedule's client for
# that algorithm.
edge_req() {
    case $1 in
    fw) cgi_run REMOTE_ADDR=192.0.2.1 RATELIMIT_ALGORITHM=fixed-window ;;
    sl) cgi_run REMOTE_ADDR=192.0.2.2 RATELIMIT_ALGORITHM=sliding-log ;;
    tb) cgi_run REMOTE_ADDR=192.0.2.3 RATELIMIT_ALGORITHM=token-bucket ;;
    esac </dev/null
}

@test "edge burst: fixed-window lets 2xLIMIT through across its edge; sliding-log and token-bucket do not" {
    # LIMIT=5 per 5 s, the same schedule for three clients, one algorithm
    # each: 1 request at t0 (this starts the fixed window), 4 late in the
    # window, then 5 just after the fixed window's edge.
    export RATELIMIT_LIMIT=5 RATELIMIT_WINDOW=$((5 * TS))s
    declare -A second=([fw]=0 [sl]=0 [tb]=0)
    fwkey=$(ip_key 192.0.2.1)
    for a in fw sl tb; do
        run edge_req $a
        assert_equal "$(status_of)" 200
    done
    # Late in the fixed window: 1.5 s before it ends.
    sleep_ms $(($(rcli PTTL "$fwkey") - 1500 * TS))
    for a in fw sl tb; do
        for i in 1 2 3 4; do
            run edge_req $a
            assert_equal "$(status_of)" 200
        done
        if [ $a = fw ]; then
            # Still the first fixed window (else this machine was too slow
            # for the schedule and the rest proves nothing): it is full.
            pttl=$(rcli PTTL "$fwkey")
            assert_equal "$(rcli GET "$fwkey")" 5
            [ "$pttl" -gt 0 ]
        fi
    done
    sleep_ms $(($(rcli PTTL "$fwkey") + 100))
    for a in fw sl tb; do
        for i in 1 2 3 4 5; do
            run edge_req $a
            if [ "$(status_of)" = 200 ]; then second[$a]=$((second[$a] + 1)); fi
        done
    done
    zcard=$(rcli ZCARD "$(ip_key 192.0.2.2)")
    # fixed-window: all 10 admitted, 9 of them within about 2 s.
    assert_equal "${second[fw]}" 5
    # sliding-log: only the t0 request has left the log; the 4 late ones
    # still count, so one more fits.
    assert_equal "${second[sl]}" 1
    [ "$zcard" -le 5 ]
    # token-bucket: only what refilled since the late requests (a token a
    # second) fits, never a whole second burst.
    [ "${second[tb]}" -lt 5 ]
    keys_all_expire
}

# ---------------------------------------------------------------- rules

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
    kt="ratelimit:tokens:$(printf 'header\0k1' | sha256sum | cut -c1-64)"

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
    [ "$ttl" -ge $((50 * TS)) ]
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
        'lonely-rule ip')
    name=('api header:X-Api-Key ten/1m' 'slow ip 5/1m leaky-bucket' 'per-ip ip 10/1m burst=3'
        "duplicate rule name 'per-ip'" 'lonely-rule ip')
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

# ------------------------------------------------------- client identity

@test "proxies: behind a trusted proxy, spoofed left-most XFF entries do not split a count" {
    export RATELIMIT_TRUSTED_PROXIES="10.0.0.0/8, 2001:db8:ffff::/48" RATELIMIT_LIMIT=2
    run cgi_run REMOTE_ADDR=10.1.2.3 "HTTP_X_FORWARDED_FOR=198.51.100.1, 203.0.113.7" </dev/null
    assert_equal "$(status_of)" 200
    assert_equal "$(header_of X-RateLimit-Remaining)" 1
    run cgi_run REMOTE_ADDR=10.1.2.3 "HTTP_X_FORWARDED_FOR=spoofB, 198.51.100.2, 203.0.113.7" </dev/null
    assert_equal "$(status_of)" 200
    assert_equal "$(header_of X-RateLimit-Remaining)" 0
    # Through two of our proxies (the right-most entry is trusted, skipped),
    # another front proxy, another spoof: still the same client.
    run cgi_run REMOTE_ADDR=2001:db8:ffff::5 "HTTP_X_FORWARDED_FOR=1.1.1.1,203.0.113.7 , 10.9.9.9" </dev/null
    assert_equal "$(status_of)" 429
    assert_equal "$(rcli DBSIZE)" 1
    assert_equal "$(rcli GET "$(ip_key 203.0.113.7)")" 2
    # The real client behind the same proxy with the same spoof is another.
    run cgi_run REMOTE_ADDR=10.1.2.3 "HTTP_X_FORWARDED_FOR=198.51.100.1, 203.0.113.8" </dev/null
    assert_equal "$(status_of)" 200
    assert_equal "$(rcli EXISTS "$(ip_key 198.51.100.1)")" 0
}

@test "proxies: an untrusted peer's X-Forwarded-For is ignored: rotating it does not help" {
    export RATELIMIT_TRUSTED_PROXIES=10.0.0.0/8 RATELIMIT_LIMIT=2
    for xff in 203.0.113.7 203.0.113.8; do
        run cgi_run REMOTE_ADDR=192.0.2.50 "HTTP_X_FORWARDED_FOR=$xff" </dev/null
        assert_equal "$(status_of)" 200
    done
    run cgi_run REMOTE_ADDR=192.0.2.50 HTTP_X_FORWARDED_FOR=203.0.113.9 </dev/null
    assert_equal "$(status_of)" 429
    assert_equal "$(rcli DBSIZE)" 1
    assert_equal "$(rcli GET "$(ip_key 192.0.2.50)")" 2
    # With no trusted proxies at all, nobody's XFF counts.
    unset RATELIMIT_TRUSTED_PROXIES
    run cgi_run REMOTE_ADDR=10.1.2.3 HTTP_X_FORWARDED_FOR=203.0.113.7 </dev/null
    assert_equal "$(status_of)" 200
    assert_equal "$(rcli EXISTS "$(ip_key 10.1.2.3)")" 1
    assert_equal "$(rcli EXISTS "$(ip_key 203.0.113.7)")" 0
}

@test "proxies: the right-most untrusted XFF entry is the client even when it is no address, never a crash" {
    export RATELIMIT_TRUSTED_PROXIES=10.0.0.0/8 RATELIMIT_LIMIT=100
    long=$(head -c 6000 /dev/zero | tr '\0' 'x')
    # The right-most untrusted entry is 203.0.113.9; garbage left of it is
    # the client's own and ignored.
    valid=('garbage, 203.0.113.9' '999.1.1.1,203.0.113.9' '203.0.113.9:8080'
        "$long, 203.0.113.9" 'not-an-ip, 203.0.113.9 , 10.0.0.7' '::ffff:203.0.113.9'
        ', ,,203.0.113.9, 10.0.0.1')
    # The right-most untrusted entry is no address: it is the client, by
    # its own (hashed) identity, never an entry further left.
    opaque=('garbage' '[::1' 'unknown, 1.2.3' "$long" '203.0.113.9:99999' $'a\tb'
        ',,,' '203.0.113.9, [fe80::1%eth0] , 10.0.0.7')
    entries=('garbage' '[::1' '1.2.3' "$long" '203.0.113.9:99999' $'a\tb' '' '[fe80::1%eth0]')
    # No entry at all: counted by the proxy's own address.
    blank=('' ' ')
    for xff in "${valid[@]}" "${opaque[@]}" "${blank[@]}"; do
        run cgi_run REMOTE_ADDR=10.0.0.1 "HTTP_X_FORWARDED_FOR=$xff" </dev/null
        assert_equal "$(status_of)" 200
        assert_output --partial "ok 10.0.0.1"
    done
    assert_equal "$(rcli GET "$(ip_key 203.0.113.9)")" "${#valid[@]}"
    for e in "${entries[@]}"; do
        assert_equal "$(rcli GET "$(xff_key "$e")")" 1
    done
    assert_equal "$(rcli GET "$(ip_key 10.0.0.1)")" "${#blank[@]}"
    assert_equal "$(rcli DBSIZE)" $((1 + ${#entries[@]} + 1))
    # Nothing of the raw entry is in a key.
    [ -z "$(rcli --scan --pattern '*unknown*')" ]
    [ -z "$(rcli --scan --pattern '*garbage*')" ]
}

@test "proxies: XFF '1.2.3.4, unknown' is the client 'unknown': limited, never in RATELIMIT_ALLOW or DENY" {
    export RATELIMIT_TRUSTED_PROXIES=10.0.0.0/8 RATELIMIT_ALLOW=1.2.3.4/32 RATELIMIT_LIMIT=2
    export RATELIMIT_DENY=198.51.100.0/24 RATELIMIT_LOG=info
    # Unchanged: the allowed address itself, directly or behind our proxies.
    for xff in 1.2.3.4 '6.6.6.6, 1.2.3.4' '1.2.3.4, 10.0.0.2' '1.2.3.4, 10.0.0.1' 1.2.3.4 1.2.3.4; do
        run cgi_run REMOTE_ADDR=10.0.0.1 "HTTP_X_FORWARDED_FOR=$xff" </dev/null
        assert_equal "$(status_of)" 200
        assert_equal "$(header_of X-RateLimit-Remaining)" ""
    done
    assert_equal "$(rcli DBSIZE)" 0
    # The proxy could not name the client ("unknown", an obfuscated id):
    # the 1.2.3.4 left of it is the client's own claim.
    for i in 1 2; do
        run cgi_run REMOTE_ADDR=10.0.0.1 "HTTP_X_FORWARDED_FOR=1.2.3.4, unknown" </dev/null
        assert_equal "$(status_of)" 200
        assert_equal "$(header_of X-RateLimit-Remaining)" $((2 - i))
    done
    run cgi_run REMOTE_ADDR=10.0.0.1 "HTTP_X_FORWARDED_FOR=1.2.3.4, unknown" </dev/null
    assert_equal "$(status_of)" 429
    # Through another of our proxies, with another claim: the same client.
    run cgi_run REMOTE_ADDR=10.9.9.9 "HTTP_X_FORWARDED_FOR=1.2.3.4, 5.5.5.5, unknown, 10.0.0.1" </dev/null
    assert_equal "$(status_of)" 429
    assert_equal "$(rcli GET "$(xff_key unknown)")" 2
    assert_equal "$(rcli EXISTS "$(ip_key 1.2.3.4)")" 0
    grep -q 'denied client xff:unknown: rule default' "$T/stderr"
    # A denied address claimed left of an opaque entry is not a denial...
    run cgi_run REMOTE_ADDR=10.0.0.1 "HTTP_X_FORWARDED_FOR=198.51.100.9, _hidden" </dev/null
    assert_equal "$(status_of)" 200
    assert_equal "$(rcli GET "$(xff_key _hidden)")" 1
    # ...while the allowed address itself still is never limited.
    run cgi_run REMOTE_ADDR=10.0.0.1 "HTTP_X_FORWARDED_FOR=1.2.3.4" </dev/null
    assert_equal "$(status_of)" 200
    assert_equal "$(header_of X-RateLimit-Remaining)" ""
}

@test "proxies: a log line shows an opaque client short and sanitised, never raw" {
    export RATELIMIT_TRUSTED_PROXIES=10.0.0.0/8 RATELIMIT_LIMIT=1 RATELIMIT_LOG=info
    raw=$(printf '\033[31m"%%s%s' "$(head -c 300 /dev/zero | tr '\0' 'q')")
    for i in 1 2; do
        run cgi_run REMOTE_ADDR=10.0.0.1 "HTTP_X_FORWARDED_FOR=1.2.3.4, $raw" </dev/null
    done
    assert_equal "$(status_of)" 429
    # 32 bytes shown: ESC, '"' and '%' as '?', then "...".
    grep -qF "denied client xff:?[31m??s$(printf 'q%.0s' {1..24})...: rule default" "$T/stderr"
    assert_equal "$(grep -c $'\033' "$T/stderr")" 0
    assert_equal "$(grep -c "$(printf 'q%.0s' {1..25})" "$T/stderr")" 0
    assert_equal "$(rcli GET "$(xff_key "$raw")")" 1
}

@test "Authorization: the scheme in any case and blanks before the credentials are one client" {
    export RATELIMIT_KEY=header:Authorization RATELIMIT_LIMIT=3
    run cgi_run "HTTP_AUTHORIZATION=Basic dXNlcjpwdw==" </dev/null
    assert_equal "$(status_of)" 200
    run cgi_run "HTTP_AUTHORIZATION=basic dXNlcjpwdw==" </dev/null
    assert_equal "$(status_of)" 200
    run cgi_run "HTTP_AUTHORIZATION=BASIC dXNlcjpwdw==" </dev/null
    assert_equal "$(status_of)" 200
    assert_equal "$(header_of X-RateLimit-Remaining)" 0
    for v in 'Basic  dXNlcjpwdw==' $'Basic\tdXNlcjpwdw==' ' Basic dXNlcjpwdw== ' 'bAsIc dXNlcjpwdw=='; do
        run cgi_run "HTTP_AUTHORIZATION=$v" </dev/null
        assert_equal "$(status_of)" 429
    done
    assert_equal "$(rcli DBSIZE)" 1
    assert_equal "$(rcli GET "$(header_key 'basic dXNlcjpwdw==')")" 3
    # Credentials are case-sensitive: another client.
    run cgi_run "HTTP_AUTHORIZATION=Basic DXNLCJPWDW==" </dev/null
    assert_equal "$(status_of)" 200
    # Other headers are taken as they are (FastCGI this time).
    export RATELIMIT_KEY=header:X-Api-Key RATELIMIT_LIMIT=1
    fcgi_start 1
    for v in 'Basic k' 'basic k' 'Basic  k'; do
        run fcgi_req "HTTP_X_API_KEY=$v" </dev/null
        assert_equal "$(status_of)" 200
    done
    run fcgi_req "HTTP_X_API_KEY=basic k" </dev/null
    assert_equal "$(status_of)" 429
}

@test "ipv6: one /64 shares a count, another /64 does not; RATELIMIT_IPV6_PREFIX changes it" {
    export RATELIMIT_LIMIT=2
    run cgi_run REMOTE_ADDR=2001:db8:1:2::1 </dev/null
    assert_equal "$(status_of)" 200
    run cgi_run REMOTE_ADDR=2001:DB8:1:2:ffff:ffff:ffff:ffff </dev/null
    assert_equal "$(status_of)" 200
    assert_equal "$(header_of X-RateLimit-Remaining)" 0
    run cgi_run REMOTE_ADDR=2001:db8:1:2:0:0:0:99 </dev/null
    assert_equal "$(status_of)" 429
    run cgi_run REMOTE_ADDR=2001:db8:1:3::1 </dev/null
    assert_equal "$(status_of)" 200
    assert_equal "$(rcli DBSIZE)" 2

    # /128: every address is its own client.
    export RATELIMIT_IPV6_PREFIX=128 RATELIMIT_NAME=p128 RATELIMIT_LIMIT=1
    run cgi_run REMOTE_ADDR=2001:db8:1:2::1 </dev/null
    assert_equal "$(status_of)" 200
    run cgi_run REMOTE_ADDR=2001:db8:1:2::2 </dev/null
    assert_equal "$(status_of)" 200
    run cgi_run REMOTE_ADDR=2001:db8:1:2::1 </dev/null
    assert_equal "$(status_of)" 429

    # /48: two /64s of one site share.
    export RATELIMIT_IPV6_PREFIX=48 RATELIMIT_NAME=p48
    run cgi_run REMOTE_ADDR=2001:db8:1:2::1 </dev/null
    assert_equal "$(status_of)" 200
    run cgi_run REMOTE_ADDR=2001:db8:1:3::1 </dev/null
    assert_equal "$(status_of)" 429
    keys_all_expire
}

@test "ipv6: an XFF address behind a trusted proxy is grouped by /64 too" {
    export RATELIMIT_TRUSTED_PROXIES=10.0.0.0/8 RATELIMIT_LIMIT=2
    run cgi_run REMOTE_ADDR=10.0.0.1 "HTTP_X_FORWARDED_FOR=2001:db8:7:7::1" </dev/null
    assert_equal "$(status_of)" 200
    run cgi_run REMOTE_ADDR=10.0.0.1 "HTTP_X_FORWARDED_FOR=[2001:db8:7:7::2]:4711" </dev/null
    assert_equal "$(status_of)" 200
    run cgi_run REMOTE_ADDR=10.0.0.1 "HTTP_X_FORWARDED_FOR=2001:db8:7:7:a:b:c:d" </dev/null
    assert_equal "$(status_of)" 429
    assert_equal "$(rcli DBSIZE)" 1
}

@test "ipv4-mapped IPv6 is counted as the IPv4 address" {
    export RATELIMIT_LIMIT=2
    run cgi_run REMOTE_ADDR=192.0.2.1 </dev/null
    assert_equal "$(status_of)" 200
    run cgi_run REMOTE_ADDR=::ffff:192.0.2.1 </dev/null
    assert_equal "$(status_of)" 200
    assert_equal "$(header_of X-RateLimit-Remaining)" 0
    run cgi_run REMOTE_ADDR=::FFFF:c000:201 </dev/null
    assert_equal "$(status_of)" 429
    assert_equal "$(rcli DBSIZE)" 1
    assert_equal "$(rcli GET "$(ip_key 192.0.2.1)")" 2
}

@test "a REMOTE_ADDR that is not an address is still counted, and logged once" {
    export RATELIMIT_LIMIT=2
    fcgi_start 1
    for i in 1 2; do
        run fcgi_req REMOTE_ADDR=not-an-address </dev/null
        assert_equal "$(status_of)" 200
    done
    run fcgi_req REMOTE_ADDR=not-an-address </dev/null
    assert_equal "$(status_of)" 429
    run fcgi_req REMOTE_ADDR=unix:/run/web.sock </dev/null
    assert_equal "$(status_of)" 200
    assert_equal "$(rcli GET "$(ip_key not-an-address)")" 2
    assert_equal "$(grep -c 'not an IP address' "$T/fcgi-stderr")" 1
}

# ------------------------------------------------------------------ lists

@test "allow: never limited, no Redis trip, works with Redis down and FAIL=closed" {
    export RATELIMIT_ALLOW="192.0.2.0/24 2001:db8:a11::/48" RATELIMIT_LIMIT=1
    for addr in 192.0.2.7 192.0.2.7 192.0.2.7 2001:db8:a11:1::1 2001:db8:a11:1::1 ::ffff:192.0.2.8; do
        run cgi_run REMOTE_ADDR=$addr </dev/null
        assert_equal "$(status_of)" 200
        assert_output --partial "ok $addr"
        # Not limited: no rate-limit headers.
        assert_equal "$(header_of RateLimit-Policy)" ""
        assert_equal "$(header_of X-RateLimit-Remaining)" ""
    done
    assert_equal "$(rcli DBSIZE)" 0
    # Others are limited.
    run cgi_run REMOTE_ADDR=198.51.100.1 </dev/null
    assert_equal "$(status_of)" 200
    run cgi_run REMOTE_ADDR=198.51.100.1 </dev/null
    assert_equal "$(status_of)" 429

    redis_stop
    export RATELIMIT_FAIL=closed RATELIMIT_TRUSTED_PROXIES=10.0.0.0/8
    run cgi_run REMOTE_ADDR=192.0.2.7 </dev/null
    assert_equal "$(status_of)" 200
    assert_output --partial "ok 192.0.2.7"
    # Allowed as the client behind a trusted proxy...
    run cgi_run REMOTE_ADDR=10.0.0.1 HTTP_X_FORWARDED_FOR=192.0.2.7 </dev/null
    assert_equal "$(status_of)" 200
    # ...but an untrusted peer cannot claim an allowed address.
    run cgi_run REMOTE_ADDR=198.51.100.1 HTTP_X_FORWARDED_FOR=192.0.2.7 </dev/null
    assert_equal "$(status_of)" 503
}

@test "deny: 403 JSON with a message, the script is not run, no Redis trip" {
    export RATELIMIT_DENY="198.51.100.0/24, 2001:db8:bad::/48" RATELIMIT_TRUSTED_PROXIES=10.0.0.0/8
    for args in REMOTE_ADDR=198.51.100.9 REMOTE_ADDR=::ffff:198.51.100.9 \
        REMOTE_ADDR=2001:db8:bad:1::1 "REMOTE_ADDR=10.0.0.1 HTTP_X_FORWARDED_FOR=198.51.100.9"; do
        # shellcheck disable=SC2086
        run cgi_run $args </dev/null
        assert_equal "$(status_of)" 403
        assert_equal "$(header_of Content-Type)" application/json
        [ -n "$(json_field message)" ]
        refute_output --partial "ok "
    done
    assert_equal "$(rcli DBSIZE)" 0
    run cgi_run REMOTE_ADDR=198.51.100.200 HTTP_X_FORWARDED_FOR=192.0.2.1 </dev/null
    assert_equal "$(status_of)" 403
    run cgi_run REMOTE_ADDR=192.0.2.1 </dev/null
    assert_equal "$(status_of)" 200
    redis_stop
    export RATELIMIT_FAIL=closed
    run cgi_run REMOTE_ADDR=198.51.100.9 </dev/null
    assert_equal "$(status_of)" 403
}

# ------------------------------------------------------ dry run, headers

@test "dry run: never denies, logs each would-be denial with rule and client, headers still sent" {
    export RATELIMIT_DRY_RUN=1 RATELIMIT_LIMIT=2
    for i in 1 2 3 4 5; do
        run cgi_run </dev/null
        assert_equal "$(status_of)" 200
        assert_output --partial "ok 127.0.0.1"
        want=$((2 - i)); [ "$want" -lt 0 ] && want=0
        assert_equal "$(header_of X-RateLimit-Remaining)" "$want"
        assert_equal "$(rl_r)" "$want"
        assert_equal "$(header_of Retry-After)" ""
    done
    assert_equal "$(grep -c 'would deny' "$T/stderr")" 3
    assert_equal "$(grep 'would deny' "$T/stderr" | grep -c 'client 127.0.0.1.*rule default')" 3
    # Counted as a real run would: the would-be denials charged nothing.
    assert_equal "$(rcli GET "$(ip_key 127.0.0.1)")" 2

    export RATELIMIT_RULES='wide ip 10/1m; narrow ip 1/1m sliding-log'
    : >"$T/stderr"
    for i in 1 2; do
        run cgi_run REMOTE_ADDR=2001:db8:5::1 </dev/null
        assert_equal "$(status_of)" 200
    done
    [[ "$(header_of RateLimit)" == '"narrow";r=0;t='* ]]
    assert_equal "$(grep 'would deny' "$T/stderr" | grep -c 'client 2001:db8:5::/64.*rule narrow')" 1
}

@test "RATELIMIT_HEADERS: all, ietf, x and none select the header families" {
    export RATELIMIT_LIMIT=1
    for mode in all ietf x none; do
        export RATELIMIT_HEADERS=$mode RATELIMIT_NAME=h-$mode
        for want in 200 429; do
            run cgi_run </dev/null
            assert_equal "$(status_of)" "$want"
            for h in RateLimit-Policy RateLimit; do
                case $mode in
                all | ietf) [ -n "$(header_of $h)" ] ;;
                *) assert_equal "$(header_of $h)" "" ;;
                esac
            done
            for h in X-RateLimit-Limit X-RateLimit-Remaining X-RateLimit-Reset; do
                case $mode in
                all | x) [ -n "$(header_of $h)" ] ;;
                *) assert_equal "$(header_of $h)" "" ;;
                esac
            done
        done
        # A denial always carries Retry-After and the JSON ttl.
        assert_equal "$(header_of Retry-After)" "$(json_field ttl)"
    done
}
