# webservers.bash - the web servers the filter runs under, configured by the
# shipped files: free loopback ports, a document root with the fixture
# scripts, a private lighttpd (lighttpd/*.conf) and a private Apache
# (apache/*.conf). Each is stopped by the PID it got.

APACHE_MODULES=/usr/lib/apache2/modules

# free_port: print a TCP port on 127.0.0.1 that nothing accepts on, below
# Linux's ephemeral range (32768-60999): a port that a busy client (a soak,
# another suite) uses for its outgoing connections cannot be bound.
free_port() {
    local p i
    for ((i = 0; i < 100; i++)); do
        p=$((20000 + (RANDOM * 32768 + RANDOM + $$) % 12000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

# www_setup: $T/www with the fixture scripts as .cgi files in cgi-bin/,
# search/ and export/, and a static file in downloads/. Readable by all
# (Apache's workers run as www-data).
www_setup() {
    local d
    WWW="$T/www"
    mkdir -p "$WWW/cgi-bin" "$WWW/search" "$WWW/export" "$WWW/downloads"
    for d in cgi-bin search export; do
        cp "$FIXTURES/cgi/ok.cgi" "$WWW/$d/ok.cgi"
    done
    cp "$FIXTURES/cgi/echo-sha.sh" "$WWW/cgi-bin/echo-sha.cgi"
    cp "$FIXTURES/cgi/sleep1.cgi" "$WWW/cgi-bin/sleep1.cgi"
    cp "$FIXTURES/cgi/hang.sh" "$WWW/cgi-bin/hang.cgi"
    printf 'the protected file\n' >"$WWW/downloads/file.txt"
    chmod -R a+rX "$WWW"
    chmod a+rx "$WWW"/*/*.cgi
    export WWW
}

# open_tmp_path: let other users (Apache's User) reach $T: every folder
# from / down to $T gets o+x (bats makes its temp folders 0700).
open_tmp_path() {
    local d="$T"
    while [ "$d" != / ] && [ -n "$d" ]; do
        [ -O "$d" ] && chmod o+x "$d"
        d=$(dirname "$d")
    done
    chmod 755 "$T"
}

# site_conf NAME: copy lighttpd/NAME to $T/NAME with the site settings set
# for this test. Fails when the file has no such settings line (the shipped
# file and the test must not drift apart).
site_conf() {
    local src="$RL_SRCDIR/lighttpd/$1" dst="$T/$1" kv name
    cp "$src" "$dst"
    for kv in "ratelimit_bin=$RL_BIN" "ratelimit_redis_url=$RATELIMIT_REDIS_URL" \
        "ratelimit_socket_dir=$T" "ratelimit_script_root=$WWW" \
        "ratelimit_metrics_file=$T/metrics"; do
        name=${kv%%=*}
        grep -q "^var\.$name := " "$src" || continue
        sed -i "s|^var\.$name := .*|var.$name := \"${kv#*=}\"|" "$dst"
    done
    # the suite's Redis timeout (lib/redis.bash), as for every worker it
    # starts: a failed-open request would break an exact count
    sed -i "s|^\( *\)\(\"RATELIMIT_REDIS_URL\" *=> .*\)|&\n\1\"RATELIMIT_REDIS_TIMEOUT_MS\" => \"${RATELIMIT_REDIS_TIMEOUT_MS:-2000}\",|" "$dst"
    ! grep -q '^var\.ratelimit_[a-z_]* := "/\(usr\|run\|var\|dev\)/' "$dst"
}

# lighttpd_start NAME...: a server on 127.0.0.1:$PORT whose document root is
# $WWW and which includes the named shipped files (site settings filled in),
# then the lines of $LT_EXTRA (e.g. a setenv.add-environment override; it
# must load the modules it uses). PID in LT_PID.
lighttpd_start() {
    local f
    {
        echo "server.document-root = \"$WWW\""
        echo "server.bind = \"127.0.0.1\""
        echo "server.port = $PORT"
        echo "server.errorlog = \"$T/lighttpd-error.log\""
        echo "server.modules = ( \"mod_access\" )"
        echo "mimetype.assign = ( \".txt\" => \"text/plain\" )"
        for f in "$@"; do
            site_conf "$f" || { echo "site settings missing in $f" >&2; return 1; }
            echo "include \"$T/$f\""
        done
        printf '%s\n' "${LT_EXTRA:-}"
    } >"$T/lighttpd.conf"
    lighttpd -tt -f "$T/lighttpd.conf"
    lighttpd -D -f "$T/lighttpd.conf" 2>>"$T/lighttpd-error.log" &
    LT_PID=$!
    wait_for "$PORT"
}

# lighttpd_stop: stop the server started by lighttpd_start (by its PID).
lighttpd_stop() {
    if [ -n "${LT_PID:-}" ]; then
        kill "$LT_PID" 2>/dev/null
        wait_gone "$LT_PID" 100 || kill -9 "$LT_PID" 2>/dev/null
        wait "$LT_PID" 2>/dev/null || true
        LT_PID=
    fi
    return 0
}

# lighttpd_start_host DIR NAME...: one more lighttpd, a web host of its
# own in front of the same Redis: as lighttpd_start, on a free port, but
# with DIR (created) in place of $T for its configuration, error log
# (DIR/lighttpd-error.log) and the filter's sockets. Appends its PID to
# LT_PIDS and its base URL (http://127.0.0.1:PORT) to LT_URLS; LT_PID and
# PORT are left alone.
lighttpd_start_host() {
    local T="$1" PORT LT_PID='' rc=0
    shift
    mkdir -p "$T"
    PORT=$(free_port) || return 1
    lighttpd_start "$@" || rc=$?
    [ -z "$LT_PID" ] || LT_PIDS+=("$LT_PID")
    [ "$rc" = 0 ] || return "$rc"
    LT_URLS+=("http://127.0.0.1:$PORT")
}

# lighttpd_stop_hosts: stop every server lighttpd_start_host started.
lighttpd_stop_hosts() {
    local LT_PID
    for LT_PID in "${LT_PIDS[@]}"; do lighttpd_stop; done
    LT_PIDS=() LT_URLS=()
}

# apache_setup: what an Apache test needs before apache_start: $T open to
# www-data, a copy of the binary it can run ($T/bin/fcgi-ratelimit), and
# free ports PORT and AUTH_PORT.
apache_setup() {
    open_tmp_path
    mkdir -p "$T/bin" "$T/apache"
    cp "$RL_BIN" "$T/bin/fcgi-ratelimit"
    chmod 755 "$T/bin" "$T/bin/fcgi-ratelimit"
    PORT=$(free_port)
    AUTH_PORT=$(free_port)
}

# apache_conf NAME...: $T/apache/httpd.conf: the test's server (loopback
# port $PORT, own pid file, logs, mutexes and fcgid state in $T) with the
# Defines the shipped files read (the binary is $T/bin/fcgi-ratelimit, the
# authorizer at 127.0.0.1:$AUTH_PORT), then an Include of each shipped
# apache/NAME, then $T/apache/extra.conf when the test wrote one.
apache_conf() {
    local m f
    # The workers (www-data) make the counter file in a folder of theirs.
    install -d -o www-data -g www-data -m 0700 "$T/apache-metrics"
    {
        echo "ServerRoot \"$T/apache\""
        echo "Define RATELIMIT_BIN $T/bin/fcgi-ratelimit"
        echo "Define RATELIMIT_REDIS_URL $RATELIMIT_REDIS_URL"
        echo "Define RATELIMIT_CGI_DIR $WWW"
        echo "Define RATELIMIT_SOCKET $T/rl.sock"
        echo "Define RATELIMIT_AUTHORIZER 127.0.0.1:$AUTH_PORT"
        echo "Define RATELIMIT_PROTECTED_DIR $WWW/downloads"
        echo "Define RATELIMIT_METRICS_FILE $T/apache-metrics/metrics"
        for m in mpm_event authz_core authn_core authz_user mime env fcgid proxy proxy_fcgi \
            authnz_fcgi; do
            echo "LoadModule ${m}_module $APACHE_MODULES/mod_$m.so"
        done
        cat <<EOC
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
# The suite's Redis timeout (lib/redis.bash), as for every worker it starts:
# the shipped 100 ms can pass on a loaded test machine, and the failed-open
# request would break an exact count.
<IfModule mod_fcgid.c>
    FcgidInitialEnv RATELIMIT_REDIS_TIMEOUT_MS ${RATELIMIT_REDIS_TIMEOUT_MS:-2000}
</IfModule>
FcgidProcessTableFile $T/apache/fcgid_shm
DocumentRoot $WWW
<Directory $WWW>
    AllowOverride None
    Require all granted
</Directory>
EOC
        for f in "$@"; do
            echo "Include $RL_SRCDIR/apache/$f"
        done
        if [ -f "$T/apache/extra.conf" ]; then echo "Include $T/apache/extra.conf"; fi
    } >"$T/apache/httpd.conf"
}

# apache_start NAME...: configure (as apache_conf), check and start; waits
# until the port listens. The daemon's PID (AP_PID) comes from its PidFile.
apache_start() {
    apache_conf "$@"
    apache2 -f "$T/apache/httpd.conf" -t
    # fd 3 closed: a server that outlived its test must not keep bats
    # waiting for its output.
    apache2 -f "$T/apache/httpd.conf" -k start 3>&- </dev/null
    wait_for "$PORT"
    # The port may listen before the PidFile is written.
    retry 100 0.05 test -s "$T/apache/httpd.pid" || true
    AP_PID=$(cat "$T/apache/httpd.pid")
}

# apache_log_if_failed: in a teardown, when the test failed, show what
# Apache and mod_fcgid said (the end of the test server's error log).
apache_log_if_failed() {
    if [ -z "${BATS_TEST_COMPLETED:-}" ] && [ -s "$T/apache/error.log" ]; then
        echo "-- the end of Apache's error log:" >&2
        tail -n 15 "$T/apache/error.log" >&2
    fi
    return 0
}

# apache_stop: stop the server started by apache_start (by its PID).
apache_stop() {
    if [ -z "${AP_PID:-}" ] && [ -s "$T/apache/httpd.pid" ]; then
        AP_PID=$(cat "$T/apache/httpd.pid")
    fi
    [ -n "${AP_PID:-}" ] || return 0
    kill -TERM "$AP_PID" 2>/dev/null
    wait_gone "$AP_PID" 100 || kill -9 "$AP_PID" 2>/dev/null
    AP_PID=
}
