#!/usr/bin/env bats
# apache.bats - fcgi-ratelimit under a real Apache 2.4: mod_fcgid
# (FcgidWrapper), mod_proxy_fcgi to `fcgi-ratelimit --listen`, and
# mod_authnz_fcgi as an authorizer. The shipped apache/*.conf files are
# included as they are, straight from the source tree: their site settings
# are Defines that the test's own httpd.conf makes first.
#
# Apache runs as root here only to start; its children (and mod_fcgid's
# filter processes) run as www-data, so the test folder is opened to it.

load helpers
load fixtures/servers

APACHE_MODULES=/usr/lib/apache2/modules

setup() {
    command -v apache2 >/dev/null || skip "apache2 is not installed"
    [ -e "$APACHE_MODULES/mod_fcgid.so" ] || skip "mod_fcgid is not installed"
    id www-data >/dev/null 2>&1 || skip "no www-data user"
    [ "$(id -u)" -eq 0 ] || skip "starting apache2 as User www-data needs root"
    redis_start
    www_setup
    open_tmp_path
    # www-data must be able to run the binary: a copy inside the test folder
    mkdir -p "$T/bin" "$T/apache"
    cp "$RL_BIN" "$T/bin/fcgi-ratelimit"
    chmod 755 "$T/bin" "$T/bin/fcgi-ratelimit"
    PORT=$(free_port)
    AUTH_PORT=$(free_port)
    BASE="http://127.0.0.1:$PORT"
    AP_PID=
    LPID=
}

teardown() {
    apache_stop
    if [ -n "${LPID:-}" ]; then
        kill "$LPID" 2>/dev/null
        wait_gone "$LPID" 100 || kill -9 "$LPID" 2>/dev/null
        wait "$LPID" 2>/dev/null || true
    fi
    kill_leftovers
    if [ -n "${OTHER_PID:-}" ]; then
        kill "$OTHER_PID" 2>/dev/null || true
        wait "$OTHER_PID" 2>/dev/null || true
    fi
    redis_stop
}

# apache_conf NAME...: $T/apache/httpd.conf: the test's server (loopback
# port, own pid file, logs, mutexes and fcgid state in $T) with the Defines
# the shipped files read, then an Include of each shipped apache/NAME.
apache_conf() {
    local m f
    {
        echo "ServerRoot \"$T/apache\""
        echo "Define RATELIMIT_BIN $T/bin/fcgi-ratelimit"
        echo "Define RATELIMIT_REDIS_URL $RATELIMIT_REDIS_URL"
        echo "Define RATELIMIT_CGI_DIR $WWW"
        echo "Define RATELIMIT_SOCKET $T/rl.sock"
        echo "Define RATELIMIT_AUTHORIZER 127.0.0.1:$AUTH_PORT"
        echo "Define RATELIMIT_PROTECTED_DIR $WWW/downloads"
        for m in mpm_event authz_core authn_core authz_user mime env fcgid proxy proxy_fcgi \
            authnz_fcgi; do
            echo "LoadModule ${m}_module $APACHE_MODULES/mod_$m.so"
        done
        cat <<EOF
Listen 127.0.0.1:$PORT
ServerName 127.0.0.1
PidFile $T/apache/httpd.pid
ErrorLog $T/apache/error.log
LogLevel warn
Mutex file:$T/apache default
DefaultRuntimeDir $T/apache
User www-data
Group www-data
TypesConfig /etc/mime.types
FcgidIPCDir $T/apache/fcgid
FcgidProcessTableFile $T/apache/fcgid_shm
DocumentRoot $WWW
<Directory $WWW>
    AllowOverride None
    Require all granted
</Directory>
EOF
        for f in "$@"; do
            echo "Include $RL_SRCDIR/apache/$f"
        done
        # a test's own additions, when it wrote some
        if [ -f "$T/apache/extra.conf" ]; then echo "Include $T/apache/extra.conf"; fi
    } >"$T/apache/httpd.conf"
}

# apache_start NAME...: configure (as apache_conf), check and start; waits
# until the port accepts. The daemon's PID comes from its PidFile.
apache_start() {
    apache_conf "$@"
    apache2 -f "$T/apache/httpd.conf" -t
    # fd 3 closed: a server that outlived its test must not keep bats
    # waiting for its output.
    apache2 -f "$T/apache/httpd.conf" -k start 3>&- </dev/null
    wait_for "$PORT"
    # The port may accept before the PidFile is written.
    for _ in $(seq 100); do
        [ -s "$T/apache/httpd.pid" ] && break
        sleep 0.05
    done
    AP_PID=$(cat "$T/apache/httpd.pid")
}

apache_stop() {
    if [ -z "${AP_PID:-}" ] && [ -s "$T/apache/httpd.pid" ]; then
        AP_PID=$(cat "$T/apache/httpd.pid")
    fi
    [ -n "${AP_PID:-}" ] || return 0
    kill -TERM "$AP_PID" 2>/dev/null
    wait_gone "$AP_PID" 100 || kill -9 "$AP_PID" 2>/dev/null
    AP_PID=
}

# filter_start ADDR [VAR=VALUE...]: the standalone filter for mod_proxy_fcgi
# or mod_authnz_fcgi, `--listen ADDR --workers 4`, configured like
# examples/systemd/fcgi-ratelimit.service plus the given variables.
filter_start() {
    local addr="$1"
    shift
    env RATELIMIT_LIMIT=100 RATELIMIT_WINDOW=1m RATELIMIT_SCRIPT_ROOT="$WWW" "$@" \
        ${TEST_PREFIX:-} "$RL_BIN" --listen "$addr" --workers 4 --socket-mode 0666 \
        2>>"$T/filter.log" &
    LPID=$!
    case "$addr" in
    unix:*) wait_for "${addr#unix:}" ;;
    *) wait_for "${addr##*:}" ;;
    esac
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
    [ "$(pgrep -P "$LPID" | wc -l)" -eq 4 ]
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
    "$RL_SERVER_BIN" --port 0 --unixsocket "$T/other.sock" --unixsocketperm 777 \
        --save '' --appendonly no --dir "$T" --daemonize no --logfile "$T/other.log" 3>&- &
    OTHER_PID=$!
    wait_for "$T/other.sock"
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
