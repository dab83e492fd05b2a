#!/usr/bin/env bats
# allow-deny.bats - RATELIMIT_ALLOW and RATELIMIT_DENY against a real
# private Redis: an allowed client is never limited and a denied one gets
# 403, neither costs a Redis trip, both hold with Redis down, and behind a
# trusted proxy only the proxy may name the client. (A client claimed left
# of an opaque X-Forwarded-For entry is identity.bats.)

load lib/load

setup() { engine_setup; }
teardown() { engine_teardown; }

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
