# http.bash - reading an answer, the binary's own (CGI or FastCGI, in
# $output) or a web server's (curl -i, in $output), and asking a web
# server with curl.

# status_of: the Status code of a CGI answer in $output ("" when none).
status_of() {
    printf '%s\n' "$output" | sed -n 's/^Status: \([0-9][0-9][0-9]\).*/\1/p' | head -n1
}

# http_status: the status code of an HTTP answer in $output (curl -i).
http_status() {
    printf '%s\n' "$output" | head -n1 | awk '{ print $2 }'
}

# header_of NAME: the value of header NAME in $output's header block.
header_of() {
    printf '%s\n' "$output" | tr -d '\r' | awk -v n="$1" '
        BEGIN { n = tolower(n) }
        /^$/ { exit }
        { i = index($0, ":"); if (i && tolower(substr($0, 1, i - 1)) == n) { v = substr($0, i + 1); sub(/^ +/, "", v); print v; exit } }'
}

# body_of: the body of the answer in $output.
body_of() {
    printf '%s\n' "$output" | tr -d '\r' | awk 'b { print } /^$/ { b = 1 }'
}

# json_field NAME: a top-level number or string field of the JSON body.
json_field() {
    body_of | jq -r --arg k "$1" '.[$k] // empty'
}

# rl_r, rl_t: the r= (remaining) and t= (seconds until the quota is whole)
# parameters of the RateLimit header in $output.
rl_r() {
    header_of RateLimit | sed -n 's/.*;r=\([0-9]*\).*/\1/p'
}
rl_t() {
    header_of RateLimit | sed -n 's/.*;t=\([0-9]*\).*/\1/p'
}

# assert_denied MAXTTL: $output is a 429 from the filter (the script did
# not run) with 1 <= ttl <= MAXTTL and Retry-After equal to it. Sets ttl
# (the caller's local, if it has one).
assert_denied() {
    assert_equal "$(status_of)" 429
    refute_output --partial "ok 127.0.0.1"
    ttl=$(json_field ttl)
    [ "$ttl" -ge 1 ]
    [ "$ttl" -le "$1" ]
    assert_equal "$(header_of Retry-After)" "$ttl"
}

# assert_denied_json [POLICY]: $output (curl -i) is a 429 with a JSON body
# whose ttl is a whole number >= 1 and equal to Retry-After (and, given, the
# policy).
assert_denied_json() {
    local ttl retry
    [ "$(http_status)" = 429 ] || { echo "status $(http_status), expected 429" >&2; return 1; }
    ttl=$(json_field ttl)
    retry=$(header_of Retry-After)
    [[ "$ttl" =~ ^[0-9]+$ ]] && [ "$ttl" -ge 1 ] || { echo "ttl '$ttl'" >&2; return 1; }
    [ "$retry" = "$ttl" ] || { echo "Retry-After '$retry' != ttl '$ttl'" >&2; return 1; }
    [ "$(json_field message)" != "" ] || { echo "no message" >&2; return 1; }
    if [ -n "${1:-}" ]; then
        [ "$(json_field policy)" = "$1" ] || { echo "policy '$(json_field policy)', expected $1" >&2; return 1; }
    fi
}

# http ARGS... : curl -si against the server; $output gets the status line,
# the headers and the body (header_of, body_of and json_field work on it).
# "Expect:" keeps curl from adding a "100 Continue" block to large POSTs.
http() {
    run curl -sS -i --max-time 20 -H 'Expect:' "$@"
}

# expect_n_ok N URL: N requests that must all be 200 (prints the first
# failure), the client's whole allowance.
expect_n_ok() {
    local n="$1" url="$2" i code
    for ((i = 1; i <= n; i++)); do
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 20 "$url")
        if [ "$code" != 200 ]; then
            echo "request $i of $n to $url: $code, expected 200" >&2
            return 1
        fi
    done
}

# burst_codes URL N P: N GET requests, P at a time; prints one status code
# per line.
burst_codes() {
    seq "$2" | xargs -P "$3" -I{} curl -s -o /dev/null -w '%{http_code}\n' --max-time 30 "$1"
}

# burst_codes_over N P URL...: as burst_codes, the N requests spread
# round-robin over the URLs (one per web host in front of the same Redis).
burst_codes_over() {
    local n="$1" p="$2" i
    shift 2
    for ((i = 0; i < n; i++)); do
        echo "${@:i % $# + 1:1}"
    done | xargs -P "$p" -n 1 curl -s -o /dev/null -w '%{http_code}\n' --max-time 30
}

# assert_exact_split FILE OK DENIED: FILE (from burst_codes) holds exactly
# OK lines "200" and DENIED lines "429", and nothing else.
assert_exact_split() {
    local ok denied total
    ok=$(grep -c '^200$' "$1" || true)
    denied=$(grep -c '^429$' "$1" || true)
    total=$(wc -l <"$1")
    echo "200: $ok, 429: $denied, of $total; every answer:" $(sort "$1" | uniq -c) >&2
    [ "$ok" -eq "$2" ] && [ "$denied" -eq "$3" ] && [ "$total" -eq $(($2 + $3)) ]
}

# post_1mb_intact URL: POST 1 MiB of random bytes to URL (a copy of
# echo-sha.sh) and check that the script saw exactly those bytes.
post_1mb_intact() {
    local want got
    head -c 1048576 /dev/urandom >"$T/body.bin"
    want=$(sha256_of "$T/body.bin")
    http -X POST -H 'Content-Type: application/octet-stream' --data-binary "@$T/body.bin" "$1"
    [ "$(http_status)" = 200 ] || { echo "status $(http_status)" >&2; return 1; }
    got=$(body_of | tail -n1)
    [ "$got" = "len=1048576 sha256=$want" ] || { echo "script saw: $got; sent sha256=$want" >&2; return 1; }
}
