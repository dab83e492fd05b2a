#!/usr/bin/env bats
# identity.bats - who the client is, against a real private Redis: the
# X-Forwarded-For chain behind RATELIMIT_TRUSTED_PROXIES (spoofed entries,
# untrusted peers, entries that are no address, logged short and
# sanitised), the Authorization scheme, IPv6 clients grouped by
# RATELIMIT_IPV6_PREFIX, IPv4-mapped addresses, and a REMOTE_ADDR that is
# no address. Each check reads the Redis key the client got (lib/hash.bash).

load lib/load

setup() { engine_setup; }
teardown() { engine_teardown; }

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
