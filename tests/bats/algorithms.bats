#!/usr/bin/env bats
# algorithms.bats - RATELIMIT_ALGORITHM against a real private Redis, in
# the keys store: the four algorithms' admit/deny/recover boundaries (one
# key per client, of the algorithm's type, always expiring), a key left by
# another algorithm or an older layout, and the fixed-window edge burst.
# The bucket store is buckets.bats; several rules at once, rules.bats.
#
# Windows are 2-6 s (times TS, see lib/load.bash). Sleeps only move past a
# boundary the test has read (a ttl, a PTTL); every assertion is on an
# outcome, never on a duration.

load lib/load

setup() { engine_setup; }
teardown() { engine_teardown; }

# cycle QUOTA MAXTTL TYPE SIZE: with the RATELIMIT_* of the shell, QUOTA
# requests back to back are admitted with the remaining count going
# QUOTA-1 .. 0 in both header families; the next three are denied with
# 1 <= ttl <= MAXTTL and Retry-After = ttl, and then Redis holds one key,
# a TYPE of SIZE (denials charged nothing), with a TTL; after sleeping ttl
# seconds a request is admitted again. The requests are sent first and
# checked afterwards, so that checking takes no window time. Sets
# STATES_AFTER: key_states right after the admitted request.
#
# The requests must all fall within SPAN ms (the window, or a token's
# refill time), from their first one or, with CYCLE_ALIGNED=1, within one
# period of SPAN aligned to the clock (sliding-window). A machine too
# loaded for that starts again afresh, at most three times.
cycle() {
    local quota="$1" maxttl="$2" type="$3" size="$4" span="$5" i ttl states keys t0 t1 attempt
    local -a outs
    for attempt in 1 2 3; do
        rcli DEL "$(ip_key 127.0.0.1)" >/dev/null
        [ "${CYCLE_ALIGNED:-}" = 1 ] && period_start "$span"
        t0=$(now_ms)
        for ((i = 1; i <= quota + 3; i++)); do
            outs[i]=$(cgi_run </dev/null)
        done
        states=$(key_states)
        keys=$(rcli --scan --pattern '*')
        t1=$(now_ms)
        if [ "${CYCLE_ALIGNED:-}" = 1 ]; then
            [ $((t0 / span)) = $((t1 / span)) ] && break
        else
            [ $((t1 - t0)) -lt "$span" ] && break
        fi
        echo "# attempt $attempt: the requests took $((t1 - t0)) ms, past their window; again" >&3
    done
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

@test "fixed-window: LIMIT admitted, remaining counts down, ttl = Retry-After, recovers after ttl" {
    export RATELIMIT_ALGORITHM=fixed-window RATELIMIT_LIMIT=3 RATELIMIT_WINDOW=$((3 * TS))s
    cycle 3 $((3 * TS)) string 3 $((3000 * TS))
    # A denied request neither counted nor extended the window: the new
    # window holds the one request just admitted.
    assert_equal "${STATES_AFTER##* }" 1
}

@test "sliding-log: LIMIT admitted, denials not logged, never more than LIMIT entries" {
    export RATELIMIT_ALGORITHM=sliding-log RATELIMIT_LIMIT=3 RATELIMIT_WINDOW=$((3 * TS))s
    cycle 3 $((3 * TS)) zset 3 $((3000 * TS))
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
    # Its windows are aligned to the clock: all six requests in one.
    CYCLE_ALIGNED=1 cycle 3 $((6 * TS)) string 3 $((3000 * TS))
    # O(1) memory: one string "s c p", whatever the traffic.
    for i in 1 2 3 4 5 6; do run cgi_run </dev/null; done
    [[ "$(rcli GET "$(ip_key 127.0.0.1)")" =~ ^[0-9]+\ [0-9]+\ [0-9]+$ ]]
    assert_equal "$(rcli DBSIZE)" 1
}

@test "token-bucket: BURST admitted at once, then one token per WINDOW/LIMIT" {
    # Capacity 3, refill 1 per 3 s.
    export RATELIMIT_ALGORITHM=token-bucket RATELIMIT_LIMIT=1 RATELIMIT_WINDOW=$((3 * TS))s RATELIMIT_BURST=3
    cycle 3 $((3 * TS)) string tat $((3000 * TS))
}

@test "token-bucket: BURST defaults to LIMIT" {
    # Capacity 2, refill 2 per 6 s: one token per 3 s.
    export RATELIMIT_ALGORITHM=token-bucket RATELIMIT_LIMIT=2 RATELIMIT_WINDOW=$((6 * TS))s
    unset RATELIMIT_BURST
    cycle 2 $((3 * TS)) string tat $((3000 * TS))
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
    # The first window's schedule must finish inside that window. On a
    # machine too loaded for it (seen once in CI: 4 requests took over
    # 1.5 s) it starts again afresh, at most three times.
    for attempt in 1 2 3; do
        rcli DEL "$fwkey" "$(ip_key 192.0.2.2)" "$(ip_key 192.0.2.3)" >/dev/null
        in_window=yes
        for a in fw sl tb; do
            run edge_req $a
            assert_equal "$(status_of)" 200
        done
        # Late in the fixed window: 2 s before it ends.
        sleep_ms $(($(rcli PTTL "$fwkey") - 2000 * TS))
        for a in fw sl tb; do
            # (At most a full bucket before these 4; it refills while they
            # run. The sliding log's 4 entries stay for 5 s from now at least.)
            [ $a = tb ] && tb_late=$(now_ms)
            [ $a = sl ] && sl_late=$(now_ms)
            for i in 1 2 3 4; do
                run edge_req $a
                assert_equal "$(status_of)" 200
            done
            # Still the first fixed window, and it is full?
            if [ $a = fw ] && { [ "$(rcli GET "$fwkey")" != 5 ] ||
                [ "$(rcli PTTL "$fwkey")" -le 0 ]; }; then
                in_window=no
                break
            fi
        done
        [ $in_window = yes ] && break
        echo "# attempt $attempt: the first window ended early; again" >&3
    done
    [ $in_window = yes ]
    # After the edge: token-bucket first (it refills while we wait), then
    # sliding-log (its late requests leave the log 5 s after they came);
    # fixed-window last, its new window starts with its first request.
    sleep_ms $(($(rcli PTTL "$fwkey") + 100))
    for a in tb sl fw; do
        for i in 1 2 3 4 5; do
            run edge_req $a
            if [ "$(status_of)" = 200 ]; then second[$a]=$((second[$a] + 1)); fi
        done
        [ $a = tb ] && tb_gap=$(($(now_ms) - tb_late))
        [ $a = sl ] && sl_gap=$(($(now_ms) - sl_late))
    done
    zcard=$(rcli ZCARD "$(ip_key 192.0.2.2)")
    # fixed-window: all 10 admitted, 9 of them within about 2 s.
    assert_equal "${second[fw]}" 5
    # sliding-log: only the t0 request has left the log; the 4 late ones
    # still count, so one more fits (unless this machine took the whole
    # window between the late requests and these).
    [ "${second[sl]}" -ge 1 ]
    [ "${second[sl]}" = 1 ] || [ "$sl_gap" -ge $((5000 * TS)) ]
    [ "$zcard" -le 5 ]
    # token-bucket: only the token left and what refilled since the late
    # requests began (a token per TS s) fits: never a whole second burst,
    # unless this machine took 4 tokens' time between the two bursts.
    [ "${second[tb]}" -le $((1 + tb_gap / (1000 * TS))) ]
    [ "${second[tb]}" -lt 5 ] || [ "$tb_gap" -ge $((4000 * TS)) ]
    keys_all_expire
}
