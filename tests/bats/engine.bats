#!/usr/bin/env bats
# engine.bats - the deciding half against a real private Redis: plain CGI,
# FastCGI Responder and Authorizer, answers, keys, outages, configuration,
# dry run and the header families (RATELIMIT_HEADERS).

load lib/load

setup() { engine_setup; }
teardown() { engine_teardown; }

@test "cgi: LIMIT requests are admitted, then 429 with JSON ttl = Retry-After" {
    for i in 1 2 3; do
        run cgi_run </dev/null
        assert_success
        assert_equal "$(status_of)" 200
        assert_output --partial "ok 127.0.0.1"
        assert_equal "$(header_of X-RateLimit-Remaining)" "$((3 - i))"
    done
    run cgi_run </dev/null
    assert_equal "$(status_of)" 429
    assert_equal "$(header_of Content-Type)" application/json
    ttl=$(json_field ttl)
    [ "$ttl" -ge 1 ] && [ "$ttl" -le 60 ]
    assert_equal "$(header_of Retry-After)" "$ttl"
    assert_equal "$(json_field message)" "call limit reached"
    assert_equal "$(json_field limit)" 3
    assert_equal "$(json_field remaining)" 0
    assert_equal "$(json_field window)" 60
    assert_equal "$(json_field policy)" default
    assert_equal "$(header_of RateLimit-Policy)" '"default";q=3;w=60'
    assert_equal "$(header_of RateLimit)" "\"default\";r=0;t=$ttl"
    refute_output --partial "ok 127.0.0.1"
    # The status line comes first (lighttpd drops headers before Status).
    assert_equal "$(printf '%s\n' "$output" | head -n1 | tr -d '\r')" "Status: 429 Too Many Requests"
}

@test "cgi: RATELIMIT_STATUS=503 denies with 503" {
    export RATELIMIT_LIMIT=1 RATELIMIT_STATUS=503
    run cgi_run </dev/null
    assert_equal "$(status_of)" 200
    run cgi_run </dev/null
    assert_equal "$(status_of)" 503
    assert_equal "$(header_of Retry-After)" "$(json_field ttl)"
}

@test "cgi: RATELIMIT_BODY=problem answers denials and errors as application/problem+json" {
    export RATELIMIT_BODY=problem RATELIMIT_RULES="per-ip ip 1/1m; roomy ip 100/1m"
    run cgi_run </dev/null
    assert_equal "$(status_of)" 200
    run cgi_run </dev/null
    assert_equal "$(status_of)" 429
    assert_equal "$(header_of Content-Type)" application/problem+json
    ttl=$(json_field ttl)
    [ "$ttl" -ge 1 ] && [ "$ttl" -le 60 ]
    assert_equal "$(header_of Retry-After)" "$ttl"
    assert_equal "$(header_of RateLimit)" "\"per-ip\";r=0;t=$ttl"
    assert_equal "$(json_field type)" "https://iana.org/assignments/http-problem-types#quota-exceeded"
    [ -n "$(json_field title)" ] && [ -n "$(json_field detail)" ]
    assert_equal "$(json_field status)" 429
    assert_equal "$(body_of | jq -c '.["violated-policies"]')" '["per-ip"]'
    # An error of ours: the client is in RATELIMIT_DENY.
    run cgi_run RATELIMIT_DENY=127.0.0.0/8 </dev/null
    assert_equal "$(status_of)" 403
    assert_equal "$(header_of Content-Type)" application/problem+json
    assert_equal "$(body_of | jq -c '[.type, .title, .status, .detail]')" \
        '["about:blank","Forbidden",403,"forbidden"]'
    # Before the configuration is known the format is not: JSON.
    run cgi_run RATELIMIT_LIMIT=lots </dev/null
    assert_equal "$(status_of)" 500
    assert_equal "$(header_of Content-Type)" application/json
    [ -n "$(json_field message)" ]
}

@test "cgi: a denied request is not counted and does not extend the window" {
    export RATELIMIT_LIMIT=1
    run cgi_run </dev/null
    key=$(rcli --scan --pattern 'ratelimit:*' | head -n1)
    [ -n "$key" ]
    before=$(rcli GET "$key")
    for i in 1 2 3; do run cgi_run </dev/null; assert_equal "$(status_of)" 429; done
    assert_equal "$(rcli GET "$key")" "$before"
    pttl=$(rcli PTTL "$key")
    [ "$pttl" -gt 0 ] && [ "$pttl" -le 60000 ]
}

@test "cgi: per-header counts are independent, keys hashed and all with a TTL" {
    export RATELIMIT_KEY=header:X-Api-Key RATELIMIT_LIMIT=2
    for i in 1 2; do
        run cgi_run HTTP_X_API_KEY=secret-alpha </dev/null
        assert_equal "$(status_of)" 200
    done
    run cgi_run HTTP_X_API_KEY=secret-alpha </dev/null
    assert_equal "$(status_of)" 429
    run cgi_run HTTP_X_API_KEY=secret-beta </dev/null
    assert_equal "$(status_of)" 200
    run rcli --scan --pattern '*'
    assert_equal "$(printf '%s\n' "$output" | grep -c .)" 2
    refute_output --partial secret
    for key in $(rcli --scan --pattern '*'); do
        [[ "$key" =~ ^ratelimit:default:[{][0-9a-f]{64}[}]$ ]]
        [ "$(rcli PTTL "$key")" -gt 0 ]
    done
    # The key is the SHA-256 of the identity, never the credential.
    want=$(header_key secret-beta)
    assert_equal "$(rcli EXISTS "$want")" 1
}

@test "cgi: a request without the header is counted by IP, or skipped" {
    export RATELIMIT_KEY=header:X-Api-Key RATELIMIT_LIMIT=1
    run cgi_run </dev/null
    assert_equal "$(status_of)" 200
    run cgi_run </dev/null
    assert_equal "$(status_of)" 429
    export RATELIMIT_KEY_MISSING=skip
    run cgi_run </dev/null
    assert_equal "$(status_of)" 200
    run cgi_run </dev/null
    assert_equal "$(status_of)" 200
}

@test "cgi: any byte sequence is an identity (20 kB, CR/LF)" {
    export RATELIMIT_KEY=header:Authorization RATELIMIT_LIMIT=1
    big=$(head -c 15000 /dev/urandom | base64 -w0)
    run cgi_run "HTTP_AUTHORIZATION=$big" </dev/null
    assert_equal "$(status_of)" 200
    run cgi_run "HTTP_AUTHORIZATION=$big" </dev/null
    assert_equal "$(status_of)" 429
    run cgi_run "HTTP_AUTHORIZATION=$(printf 'a\r\nb')" </dev/null
    assert_equal "$(status_of)" 200
    run cgi_run "HTTP_AUTHORIZATION=$(printf 'a\r\nc')" </dev/null
    assert_equal "$(status_of)" 200
}

@test "cgi: SCRIPT FLUSH between requests still works" {
    run cgi_run </dev/null
    assert_equal "$(status_of)" 200
    rcli SCRIPT FLUSH
    run cgi_run </dev/null
    assert_equal "$(status_of)" 200
    assert_equal "$(header_of X-RateLimit-Remaining)" 1
}

@test "cgi: Redis down with RATELIMIT_FAIL=open lets the request through" {
    redis_stop
    export RATELIMIT_FAIL=open
    run cgi_run </dev/null
    assert_equal "$(status_of)" 200
    assert_output --partial "ok 127.0.0.1"
    grep -q "redis unix://$REDIS_SOCK" "$T/stderr"
}

@test "cgi: Redis down with RATELIMIT_FAIL=closed answers 503 JSON, Retry-After: 1" {
    redis_stop
    export RATELIMIT_FAIL=closed
    run cgi_run </dev/null
    assert_equal "$(status_of)" 503
    assert_equal "$(header_of Retry-After)" 1
    [ -n "$(json_field message)" ]
    refute_output --partial "ok 127.0.0.1"
}

@test "cgi: an invalid value answers 500 JSON and logs the variable and value" {
    export RATELIMIT_LIMIT=lots
    run cgi_run </dev/null
    assert_equal "$(status_of)" 500
    [ -n "$(json_field message)" ]
    grep -q "RATELIMIT_LIMIT.*lots" "$T/stderr"
}

@test "cgi: an unknown RATELIMIT_ variable is named with the closest known one" {
    run cgi_run RATELIMIT_LIMTI=5 </dev/null
    assert_equal "$(status_of)" 200
    grep -q "RATELIMIT_LIMTI.*RATELIMIT_LIMIT" "$T/stderr"
}

@test "cgi: the Redis password reaches no log line" {
    export RATELIMIT_REDIS_PASSWORD=hunter2-secret RATELIMIT_FAIL=closed
    run cgi_run </dev/null
    assert_equal "$(status_of)" 503
    [ -s "$T/stderr" ]
    ! grep -q hunter2 "$T/stderr"
    refute_output --partial hunter2
}

@test "cgi: RATELIMIT_MODE=authorizer answers like a FastCGI Authorizer" {
    export RATELIMIT_MODE=authorizer RATELIMIT_LIMIT=1
    run cgi_run </dev/null
    assert_equal "$(printf '%s\n' "$output" | head -n1 | tr -d '\r')" "Status: 200 OK"
    assert_equal "$(header_of Variable-RATELIMIT_LIMIT)" 1
    assert_equal "$(header_of Variable-RATELIMIT_REMAINING)" 0
    refute_output --partial "ok 127.0.0.1"
    run cgi_run </dev/null
    assert_equal "$(status_of)" 429
}

@test "--check succeeds against a running Redis and prints a summary" {
    run env -i PATH="$PATH" RATELIMIT_REDIS_URL="$RATELIMIT_REDIS_URL" ${TEST_PREFIX:-} "$RL_BIN" --check
    assert_success
    assert_output --partial "ok:"
    assert_output --partial "unix://$REDIS_SOCK"
}

@test "--check fails with the reason: bad value, Redis down" {
    run env -i PATH="$PATH" RATELIMIT_REDIS_URL="$RATELIMIT_REDIS_URL" RATELIMIT_WINDOW=5x ${TEST_PREFIX:-} "$RL_BIN" --check
    assert_failure 1
    assert_output --partial "RATELIMIT_WINDOW"
    redis_stop
    run env -i PATH="$PATH" RATELIMIT_REDIS_URL="$RATELIMIT_REDIS_URL" ${TEST_PREFIX:-} "$RL_BIN" --check
    assert_failure 1
    assert_output --partial "redis"
}

# table_vars: the variables of config.c's table, from its source, one a
# line: what --check --verbose must list.
table_vars() {
    grep -oE '_VAR\("RATELIMIT_[A-Z0-9_]+"' "$RL_SRCDIR/src/config.c" | cut -d'"' -f2
}

# assert_listing: $output names every variable of the table exactly once,
# as NAME=VALUE (SOURCE), and no other RATELIMIT_* line.
assert_listing() {
    local v n
    n=$(table_vars | wc -l)
    [ "$n" -ge 30 ]
    assert_equal "$(grep -cE '^RATELIMIT_[A-Z0-9_]+=.* \((default|environment)\)$' <<<"$output")" "$n"
    assert_equal "$(grep -c '^RATELIMIT_' <<<"$output")" "$n"
    for v in $(table_vars); do
        assert_equal "$v $(grep -c "^$v=" <<<"$output")" "$v 1"
    done
}

@test "--check --verbose: every variable once with its source, RATELIMIT_REDIS_PASSWORD masked" {
    local pw=Vrb0se-Env-Passw0rd-815 plain
    redis_stop
    REDIS_REQUIREPASS=$pw redis_start
    run env -i PATH="$PATH" RATELIMIT_REDIS_URL="$RATELIMIT_REDIS_URL" RATELIMIT_LIMIT=7 \
        RATELIMIT_REDIS_PASSWORD="$pw" ${TEST_PREFIX:-} "$RL_BIN" --check
    assert_success
    plain=$output
    run env -i PATH="$PATH" RATELIMIT_REDIS_URL="$RATELIMIT_REDIS_URL" RATELIMIT_LIMIT=7 \
        RATELIMIT_REDIS_PASSWORD="$pw" ${TEST_PREFIX:-} "$RL_BIN" --check --verbose
    assert_success
    assert_listing
    assert_line --regexp '^RATELIMIT_LIMIT=7 +\(environment\)$'
    assert_line --regexp '^RATELIMIT_STATUS=429 +\(default\)$'
    assert_line --regexp '^RATELIMIT_REDIS_PASSWORD=\*\*\* +\(environment\)$'
    assert_line --regexp '^RATELIMIT_SENTINEL_PASSWORD=unset +\(default\)$'
    assert_line --partial "RATELIMIT_REDIS_URL=unix://$REDIS_SOCK "
    refute_output --partial "$pw"
    # --check's own lines follow, as without --verbose.
    assert_equal "$(grep -v '^RATELIMIT_' <<<"$output")" "$plain"
}

@test "--check -v: a password in RATELIMIT_REDIS_URL is masked, with and without a user" {
    local pw=Vrb0se-Url-Passw0rd-816 port
    redis_stop
    port=$(free_port)
    redis_server REDIS_PID "$T/redis.sock" --port "$port" --bind 127.0.0.1 --requirepass "$pw"
    run env -i PATH="$PATH" RATELIMIT_REDIS_URL="redis://default:$pw@127.0.0.1:$port/0" \
        ${TEST_PREFIX:-} "$RL_BIN" --check -v
    assert_success
    assert_listing
    assert_line --regexp "^RATELIMIT_REDIS_URL=redis://default:\\*\\*\\*@127\\.0\\.0\\.1:$port/0 +\\(environment\\)\$"
    assert_line --regexp '^RATELIMIT_REDIS_PASSWORD=unset +\(default\)$'
    assert_line --regexp '^RATELIMIT_LIMIT=60 +\(default\)$'
    assert_line --partial "ok:"
    refute_output --partial "$pw"
    run env -i PATH="$PATH" RATELIMIT_REDIS_URL="redis://:$pw@127.0.0.1:$port" \
        ${TEST_PREFIX:-} "$RL_BIN" --check --verbose
    assert_success
    assert_listing
    assert_line --regexp "^RATELIMIT_REDIS_URL=redis://:\\*\\*\\*@127\\.0\\.0\\.1:$port +\\(environment\\)\$"
    refute_output --partial "$pw"
}

@test "--check --verbose: an invalid configuration or Redis down is listed, then the error, exit 1" {
    local pw=Vrb0se-Bad-Passw0rd-817
    run env -i PATH="$PATH" RATELIMIT_REDIS_URL="$RATELIMIT_REDIS_URL" RATELIMIT_WINDOW=5x \
        RATELIMIT_REDIS_PASSWORD="$pw" ${TEST_PREFIX:-} "$RL_BIN" --check --verbose
    assert_failure 1
    assert_listing
    assert_line --regexp '^RATELIMIT_WINDOW=5x +\(environment\)$'
    assert_line --regexp '^RATELIMIT_REDIS_PASSWORD=\*\*\* +\(environment\)$'
    assert_output --partial "invalid configuration: RATELIMIT_WINDOW"
    refute_output --partial "$pw"
    redis_stop
    run env -i PATH="$PATH" RATELIMIT_REDIS_URL="$RATELIMIT_REDIS_URL" \
        ${TEST_PREFIX:-} "$RL_BIN" --check --verbose
    assert_failure 1
    assert_listing
    assert_output --partial "fcgi-ratelimit: redis:"
}

@test "--verbose without --check is a usage error" {
    run env -i PATH="$PATH" ${TEST_PREFIX:-} "$RL_BIN" --verbose
    assert_failure 2
    assert_output --partial "--verbose goes with --check"
    run env -i PATH="$PATH" ${TEST_PREFIX:-} "$RL_BIN" -v
    assert_failure 2
}

@test "--version and --help" {
    run "$RL_BIN" --version
    assert_success
    assert_output --regexp '^fcgi-ratelimit [0-9]+\.[0-9]+'
    run "$RL_BIN" --help
    assert_success
    assert_output --partial "--listen"
}

@test "exactness: 60 concurrent CGI runs with limit 20 admit exactly 20" {
    export RATELIMIT_LIMIT=20
    pids=()
    for i in $(seq 60); do
        cgi_run </dev/null > "$T/out.$i" &
        pids+=($!)
    done
    wait "${pids[@]}"
    allowed=$(grep -l '^Status: 200' "$T"/out.* | wc -l)
    denied=$(grep -l '^Status: 429' "$T"/out.* | wc -l)
    assert_equal "$allowed" 20
    assert_equal "$denied" 40
}

@test "fastcgi responder: admits LIMIT, then 429; params override per request" {
    fcgi_start 1
    for i in 1 2 3; do
        run fcgi_req </dev/null
        assert_equal "$(status_of)" 200
        assert_output --partial "ok 127.0.0.1"
    done
    run fcgi_req </dev/null
    assert_equal "$(status_of)" 429
    assert_equal "$(header_of Retry-After)" "$(json_field ttl)"
    # A location with its own limit (SetEnv / setenv.add-environment).
    run fcgi_req RATELIMIT_NAME=other RATELIMIT_LIMIT=1 </dev/null
    assert_equal "$(status_of)" 200
    assert_equal "$(header_of X-RateLimit-Limit)" 1
    run fcgi_req RATELIMIT_NAME=other RATELIMIT_LIMIT=1 </dev/null
    assert_equal "$(status_of)" 429
    # A bad override is a 500 for that request only.
    run fcgi_req RATELIMIT_LIMIT=-4 </dev/null
    assert_equal "$(status_of)" 500
    grep -q "RATELIMIT_LIMIT.*-4" "$T/fcgi-stderr"
}

@test "fastcgi authorizer: 200 with only Variable-RATELIMIT_*, then the denial with Status first" {
    export RATELIMIT_LIMIT=2
    fcgi_start 1
    run fcgi_req -a </dev/null
    assert_equal "$(printf '%s\n' "$output" | head -n1 | tr -d '\r')" "Status: 200 OK"
    assert_equal "$(header_of Variable-RATELIMIT_LIMIT)" 2
    assert_equal "$(header_of Variable-RATELIMIT_REMAINING)" 1
    [ -n "$(header_of Variable-RATELIMIT_RESET)" ]
    # Nothing but Status and Variable-* (Apache leaks the rest to clients).
    assert_equal "$(printf '%s\n' "$output" | tr -d '\r' | grep -v '^Status:' | grep -v '^Variable-RATELIMIT_' | grep -c .)" 0
    run fcgi_req -a </dev/null
    assert_equal "$(status_of)" 200
    run fcgi_req -a </dev/null
    assert_equal "$(printf '%s\n' "$output" | head -n1 | tr -d '\r')" "Status: 429 Too Many Requests"
    assert_equal "$(header_of Retry-After)" "$(json_field ttl)"
}

@test "fastcgi: Redis down and back, the worker recovers without a restart" {
    export RATELIMIT_FAIL=closed
    fcgi_start 1
    run fcgi_req </dev/null
    assert_equal "$(status_of)" 200
    redis_stop
    run fcgi_req </dev/null
    assert_equal "$(status_of)" 503
    run fcgi_req </dev/null
    assert_equal "$(status_of)" 503
    # One log line per outage, not one per request.
    assert_equal "$(grep -c 'unreachable' "$T/fcgi-stderr")" 1
    redis_start
    ok=
    for i in $(seq 80); do
        run fcgi_req </dev/null
        if [ "$(status_of)" = 200 ]; then ok=1; break; fi
        sleep 0.5
    done
    [ -n "$ok" ]
}

@test "fastcgi: a client inside a denial is answered from the worker's memory, never longer than ttl" {
    # The window is long enough for the seven requests on a slow machine;
    # the answers are kept and checked after the count of Redis calls.
    local answers=() a
    export RATELIMIT_LIMIT=1 RATELIMIT_WINDOW=$((8 * TS))s RATELIMIT_FAIL=closed
    fcgi_start 1
    run fcgi_req </dev/null
    assert_equal "$(status_of)" 200
    rcli CONFIG RESETSTAT >/dev/null
    for i in 1 2 3 4 5 6; do
        answers+=("$(fcgi_req </dev/null)")
    done
    # Six denials, one Redis call: the first one.
    calls=$(rcli INFO commandstats | tr -d '\r' | sed -n 's/^cmdstat_evalsha:calls=\([0-9]*\),.*/\1/p')
    assert_equal "$calls" 1
    output=${answers[0]}
    assert_equal "$(status_of)" 429
    first=$(json_field ttl)
    for a in "${answers[@]:1}"; do
        output=$a
        assert_equal "$(status_of)" 429
        [ "$(json_field ttl)" -le "$first" ]
        assert_equal "$(header_of Retry-After)" "$(json_field ttl)"
    done
    # Past the ttl the worker asks Redis again (and is admitted).
    sleep "$first"
    run fcgi_req </dev/null
    assert_equal "$(status_of)" 200
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
