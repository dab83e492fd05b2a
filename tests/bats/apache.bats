#!/usr/bin/env bats
# apache.bats - fcgi-ratelimit under a real Apache 2.4: mod_fcgid
# (FcgidWrapper), mod_proxy_fcgi to `fcgi-ratelimit --listen`, and
# mod_authnz_fcgi as an authorizer. The shipped apache/*.conf files are
# included as they are, straight from the source tree: their site settings
# are Defines that the test's own httpd.conf makes first.
#
# Apache runs as root here only to start; its children (and mod_fcgid's
# filter processes) run as www-data, so the test folder is opened to it.

load lib/load

setup() {
    command -v apache2 >/dev/null || skip "apache2 is not installed"
    [ -e "$APACHE_MODULES/mod_fcgid.so" ] || skip "mod_fcgid is not installed"
    id www-data >/dev/null 2>&1 || skip "no www-data user"
    [ "$(id -u)" -eq 0 ] || skip "starting apache2 as User www-data needs root"
    redis_start
    www_setup
    apache_setup
    BASE="http://127.0.0.1:$PORT"
    AP_PID=
    LPID=
}

teardown() {
    apache_log_if_failed
    apache_stop
    listen_stop
    kill_leftovers
    if [ -n "${OTHER_PID:-}" ]; then
        kill "$OTHER_PID" 2>/dev/null || true
        wait "$OTHER_PID" 2>/dev/null || true
    fi
    redis_stop
}

# filter_start ADDR [VAR=VALUE...]: the standalone filter for mod_proxy_fcgi
# or mod_authnz_fcgi, `--listen ADDR --workers 4`, configured like
# examples/systemd/fcgi-ratelimit.service plus the given variables.
filter_start() {
    local addr="$1"
    shift
    listen_start RATELIMIT_LIMIT=100 RATELIMIT_WINDOW=1m RATELIMIT_SCRIPT_ROOT="$WWW" "$@" \
        "$addr" --workers 4 --socket-mode 0666
}

@test "apache: the shipped files pass apache2 -t, all four together" {
    apache_conf fcgi-ratelimit-fcgid.conf fcgi-ratelimit-authnz.conf fcgi-ratelimit-locations.conf
    run apache2 -f "$T/apache/httpd.conf" -t
    assert_success
    apache_conf fcgi-ratelimit-proxy.conf fcgi-ratelimit-authnz.conf fcgi-ratelimit-locations.conf
    run apache2 -f "$T/apache/httpd.conf" -t
    assert_success
    # and their defaults, for a real site, when nothing is defined before
    sed -i '/^Define RATELIMIT_/d' "$T/apache/httpd.conf"
    run apache2 -f "$T/apache/httpd.conf" -t -D DUMP_RUN_CFG
    assert_success
}

@test "apache mod_fcgid: admits the limit, then 429 JSON with ttl and Retry-After" {
    apache_start fcgi-ratelimit-fcgid.conf
    http "$BASE/cgi-bin/ok.cgi"
    [ "$(http_status)" = 200 ]
    assert_output --partial "ok 127.0.0.1"
    [ "$(header_of X-RateLimit-Limit)" = 100 ]
    [ "$(header_of X-RateLimit-Remaining)" = 99 ]
    expect_n_ok 99 "$BASE/cgi-bin/ok.cgi"
    http "$BASE/cgi-bin/ok.cgi"
    assert_denied_json default
    [[ "$(header_of Content-Type)" == application/json* ]]
    refute_output --partial "ok 127.0.0.1"
}

@test "apache mod_fcgid: a 1 MB POST reaches the script intact" {
    apache_start fcgi-ratelimit-fcgid.conf
    post_1mb_intact "$BASE/cgi-bin/echo-sha.cgi"
}

@test "apache mod_fcgid: exactly LIMIT of 300 requests, 30 at a time" {
    apache_start fcgi-ratelimit-fcgid.conf
    burst_codes "$BASE/cgi-bin/ok.cgi" 300 30 >"$T/codes"
    assert_exact_split "$T/codes" 100 200
}

@test "apache mod_proxy_fcgi -> --listen: admits the limit, then 429 JSON" {
    filter_start "unix:$T/rl.sock"
    apache_start fcgi-ratelimit-proxy.conf
    expect_n_ok 100 "$BASE/cgi-bin/ok.cgi"
    http "$BASE/cgi-bin/ok.cgi"
    assert_denied_json default
    [[ "$(header_of Content-Type)" == application/json* ]]
}

@test "apache mod_proxy_fcgi -> --listen: a 1 MB POST reaches the script intact" {
    filter_start "unix:$T/rl.sock"
    apache_start fcgi-ratelimit-proxy.conf
    post_1mb_intact "$BASE/cgi-bin/echo-sha.cgi"
}

@test "apache mod_proxy_fcgi -> --listen: exactly LIMIT of 300, 30 at a time, 4 workers" {
    filter_start "unix:$T/rl.sock"
    apache_start fcgi-ratelimit-proxy.conf
    [ "$(workers | wc -l)" -eq 4 ]
    burst_codes "$BASE/cgi-bin/ok.cgi" 300 30 >"$T/codes"
    assert_exact_split "$T/codes" 100 200
}

@test "apache mod_authnz_fcgi: guards a static file with a real 429 JSON" {
    filter_start "127.0.0.1:$AUTH_PORT" RATELIMIT_LIMIT=5 RATELIMIT_NAME=downloads
    apache_start fcgi-ratelimit-authnz.conf
    http "$BASE/downloads/file.txt"
    [ "$(http_status)" = 200 ]
    [ "$(body_of)" = "the protected file" ]
    [ -z "$(header_of WWW-Authenticate)" ]
    expect_n_ok 4 "$BASE/downloads/file.txt"
    http "$BASE/downloads/file.txt"
    assert_denied_json downloads
    [ -z "$(header_of WWW-Authenticate)" ]
    refute_output --partial "the protected file"
    # outside the guarded folder nothing is limited
    printf 'public\n' >"$WWW/public.txt"
    chmod 644 "$WWW/public.txt"
    http "$BASE/public.txt"
    [ "$(http_status)" = 200 ]
}

@test "apache locations: two URLs with their own limits via SetEnv" {
    apache_start fcgi-ratelimit-fcgid.conf fcgi-ratelimit-locations.conf
    expect_n_ok 3 "$BASE/export/ok.cgi"
    http "$BASE/export/ok.cgi"
    assert_denied_json export
    [ "$(json_field limit)" = 3 ]
    expect_n_ok 20 "$BASE/search/ok.cgi"
    http "$BASE/search/ok.cgi"
    assert_denied_json search
    [ "$(json_field limit)" = 20 ]
    http "$BASE/cgi-bin/ok.cgi"
    [ "$(http_status)" = 200 ]
    [ "$(header_of X-RateLimit-Limit)" = 100 ]
}

# A script answering a local redirect (Location: /downloads/file.txt, no
# Status): Apache serves that file itself, 200, as mod_cgid would.
local_redirect_served() {
    cp "$FIXTURES/cgi/localredirect.sh" "$WWW/cgi-bin/localredirect.cgi"
    chmod a+rx "$WWW/cgi-bin/localredirect.cgi"
    http "$BASE/cgi-bin/localredirect.cgi"
    [ "$(http_status)" = 200 ] || { echo "status $(http_status): $output" >&2; return 1; }
    [ "$(body_of)" = "the protected file" ]
    [ -z "$(header_of Location)" ]
}

@test "apache mod_fcgid: a local redirect is served by Apache (200), not a 302" {
    apache_start fcgi-ratelimit-fcgid.conf
    local_redirect_served
}

# htaccess_setenv LINE...: $WWW/cgi-bin/.htaccess with the lines, and the
# AllowOverride FileInfo that lets an .htaccess author use SetEnv.
htaccess_setenv() {
    printf '%s\n' "$@" >"$WWW/cgi-bin/.htaccess"
    chmod a+r "$WWW/cgi-bin/.htaccess"
    printf '<Directory %s/cgi-bin>\n    AllowOverride FileInfo\n</Directory>\n' "$WWW" \
        >>"$T/apache/extra.conf"
}

@test "apache mod_fcgid: .htaccess SetEnv cannot re-point Redis or widen the script root" {
    # A second Redis anyone may use: were the SetEnv obeyed, counts went there.
    redis_server OTHER_PID "$T/other.sock"
    htaccess_setenv "SetEnv RATELIMIT_REDIS_URL unix://$T/other.sock" \
        "SetEnv RATELIMIT_SCRIPT_ROOT /" "SetEnv RATELIMIT_LIMIT 2"
    apache_start fcgi-ratelimit-fcgid.conf
    http "$BASE/cgi-bin/ok.cgi"
    other_keys=$("$RL_CLI_BIN" -s "$T/other.sock" DBSIZE)
    [ "$(http_status)" = 200 ]
    # The limit policy still follows the .htaccess (overrides=policy).
    [ "$(header_of X-RateLimit-Limit)" = 2 ]
    [ "$other_keys" = 0 ]
    [ "$(rcli --scan --pattern 'ratelimit:*' | wc -l)" -ge 1 ]
    grep -q 'request parameter RATELIMIT_REDIS_URL ignored' "$T/apache/error.log"
    grep -q 'request parameter RATELIMIT_SCRIPT_ROOT ignored' "$T/apache/error.log"
    run grep -c 'ignored.*other\.sock' "$T/apache/error.log"
    assert_output 0
}

@test "apache mod_fcgid: with RATELIMIT_OVERRIDES=none an .htaccess SetEnv RATELIMIT_LIMIT does nothing" {
    echo "FcgidInitialEnv RATELIMIT_OVERRIDES none" >"$T/apache/extra.conf"
    htaccess_setenv "SetEnv RATELIMIT_LIMIT 1000000000"
    apache_start fcgi-ratelimit-fcgid.conf
    http "$BASE/cgi-bin/ok.cgi"
    [ "$(http_status)" = 200 ]
    [ "$(header_of X-RateLimit-Limit)" = 100 ]
    grep -q 'RATELIMIT_OVERRIDES=none' "$T/apache/error.log"
}
