#!/usr/bin/env bats
# lighttpd.bats - fcgi-ratelimit under a real lighttpd 1.4, configured by
# the shipped lighttpd/*.conf files with only their site settings (the
# `var.ratelimit_* := "..."` lines) rewritten to this test's paths.

load lib/load

setup() {
    command -v lighttpd >/dev/null || skip "lighttpd is not installed"
    redis_start
    www_setup
    PORT=$(free_port)
    BASE="http://127.0.0.1:$PORT"
    LT_PID=
}

teardown() {
    lighttpd_stop
    kill_leftovers
    redis_stop
}

@test "lighttpd: all shipped files load together" {
    local f
    for f in 50-fcgi-ratelimit.conf 50-fcgi-ratelimit-authorizer.conf 51-fcgi-ratelimit-locations.conf; do
        site_conf "$f"
        echo "include \"$T/$f\"" >>"$T/all.conf"
    done
    printf 'server.document-root = "%s"\nserver.port = %s\n' "$WWW" "$PORT" >"$T/main.conf"
    cat "$T/all.conf" >>"$T/main.conf"
    run lighttpd -tt -f "$T/main.conf"
    assert_success
    run lighttpd -p -f "$T/main.conf"
    assert_output --regexp '"mode" +=> "authorizer"'
    assert_output --partial "server.stream-response-body = 2"
}

@test "lighttpd wrapper: admits the limit, then 429 JSON with ttl and Retry-After" {
    lighttpd_start 50-fcgi-ratelimit.conf
    http "$BASE/cgi-bin/ok.cgi"
    [ "$(http_status)" = 200 ]
    assert_output --partial "ok 127.0.0.1"
    [ "$(header_of X-RateLimit-Limit)" = 100 ]
    [ "$(header_of X-RateLimit-Remaining)" = 99 ]
    expect_n_ok 99 "$BASE/cgi-bin/ok.cgi"
    http "$BASE/cgi-bin/ok.cgi"
    assert_denied_json default
    [[ "$(header_of Content-Type)" == application/json* ]]
    [ "$(json_field limit)" = 100 ]
    refute_output --partial "ok 127.0.0.1"
}

@test "lighttpd wrapper: exactly LIMIT of 300 requests, 30 at a time, 4 workers" {
    lighttpd_start 50-fcgi-ratelimit.conf
    burst_codes "$BASE/cgi-bin/ok.cgi" 300 30 >"$T/codes"
    assert_exact_split "$T/codes" 100 200
    # max-procs 4: four filter processes served them
    [ -S "$T/fcgi-ratelimit.sock-3" ]
}

@test "lighttpd wrapper: a 1 MB POST reaches the script intact" {
    lighttpd_start 50-fcgi-ratelimit.conf
    post_1mb_intact "$BASE/cgi-bin/echo-sha.cgi"
}

@test "lighttpd wrapper: a missing script is lighttpd's 404 (check-local)" {
    lighttpd_start 50-fcgi-ratelimit.conf
    http "$BASE/cgi-bin/nope.cgi"
    [ "$(http_status)" = 404 ]
}

@test "lighttpd authorizer: guards a static file, then 429 JSON" {
    lighttpd_start 50-fcgi-ratelimit-authorizer.conf
    http "$BASE/downloads/file.txt"
    [ "$(http_status)" = 200 ]
    [ "$(body_of)" = "the protected file" ]
    expect_n_ok 29 "$BASE/downloads/file.txt"
    http "$BASE/downloads/file.txt"
    assert_denied_json downloads
    refute_output --partial "the protected file"
    # outside the guarded prefix nothing is limited
    printf 'public\n' >"$WWW/public.txt"
    http "$BASE/public.txt"
    [ "$(http_status)" = 200 ]
    [ "$(body_of)" = public ]
}

@test "lighttpd locations: two URLs with their own limits via setenv" {
    lighttpd_start 50-fcgi-ratelimit.conf 51-fcgi-ratelimit-locations.conf
    expect_n_ok 3 "$BASE/export/ok.cgi"
    http "$BASE/export/ok.cgi"
    assert_denied_json export
    [ "$(json_field limit)" = 3 ]
    # /search/ keeps its own count: all 20 still allowed, then denied
    expect_n_ok 20 "$BASE/search/ok.cgi"
    http "$BASE/search/ok.cgi"
    assert_denied_json search
    [ "$(json_field limit)" = 20 ]
    # and the rest of the site its own (the process-level 100)
    http "$BASE/cgi-bin/ok.cgi"
    [ "$(http_status)" = 200 ]
    [ "$(header_of X-RateLimit-Limit)" = 100 ]
}

@test "lighttpd: stopping the server leaves no filter process behind" {
    lighttpd_start 50-fcgi-ratelimit.conf
    expect_n_ok 1 "$BASE/cgi-bin/ok.cgi"
    [ -n "$(rl_leftovers)" ]
    kill "$LT_PID"
    wait_gone "$LT_PID"
    LT_PID=
    for _ in $(seq 50); do [ -z "$(rl_leftovers)" ] && break; sleep 0.1; done
    [ -z "$(rl_leftovers)" ]
}

@test "lighttpd wrapper: a small answer arrives whole: Content-Length, HEAD, Range 206" {
    cp "$FIXTURES/cgi/hello.sh" "$WWW/cgi-bin/hello.cgi"
    chmod a+rx "$WWW/cgi-bin/hello.cgi"
    lighttpd_start 50-fcgi-ratelimit.conf
    http "$BASE/cgi-bin/hello.cgi"
    [ "$(http_status)" = 200 ]
    [ "$(header_of Content-Length)" = 21 ]
    [ "$(body_of)" = 0123456789abcdefghij ]
    http -I "$BASE/cgi-bin/hello.cgi"
    [ "$(http_status)" = 200 ]
    [ "$(header_of Content-Length)" = 21 ]
    http -r 0-9 "$BASE/cgi-bin/hello.cgi"
    [ "$(http_status)" = 206 ]
    [ "$(header_of Content-Range)" = "bytes 0-9/21" ]
    [ "$(printf '%s' "$output" | tail -c 10)" = 0123456789 ]
}
