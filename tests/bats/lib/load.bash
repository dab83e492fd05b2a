# load.bash - the one entry point of the bats helper library; every suite
# starts with `load lib/load`. It loads bats-support and bats-assert, checks
# the environment make check gives (RL_BIN, RL_FCGI_CLIENT, RL_SRCDIR,
# RL_BUILDDIR; TEST_PREFIX, e.g. "valgrind ...", wraps every run of the
# binary, as hiredis' test.sh does) and sources the themed files:
#
#   wait.bash        waiting: a socket or port that listens, a process gone,
#                    a child started or reaped, lines in a file; sleep_ms
#   redis.bash       the private redis-server (or valkey-server), rcli, the
#                    keys it holds
#   hash.bash        hashing: an identity's Redis key, a file's SHA-256
#   filter.bash      the binary under test: plain CGI runs, FastCGI workers
#                    (spawned by the test or by --listen), their processes
#   http.bash        reading an answer (status, headers, JSON body, the
#                    RateLimit fields) and asking a web server with curl
#   webservers.bash  free ports, a document root, lighttpd and Apache with
#                    the shipped configuration files
#
# Every process is started in the test and stopped by the PID it got,
# never by name. tests/soak sources wait.bash, redis.bash and
# webservers.bash on their own (they need nothing from bats).

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'

: "${RL_BIN:?RL_BIN must name the fcgi-ratelimit binary (run through make check)}"
: "${RL_SRCDIR:?}"
FIXTURES="$RL_SRCDIR/tests/bats/fixtures"

# Time-based tests size their windows as N * TS seconds: TS is 1, or
# RL_TIME_SCALE, or 10 under a TEST_PREFIX (valgrind makes one run take a
# second or more).
TS=${RL_TIME_SCALE:-1}
if [ -n "${TEST_PREFIX:-}" ] && [ -z "${RL_TIME_SCALE:-}" ]; then
    TS=10
fi

# rl_tmp: a private directory for this test (removed by bats), and the
# counter file of the filters it starts in there (never the host's, in
# /dev/shm: a root-owned one would keep a web server's workers from it).
rl_tmp() {
    T="${BATS_TEST_TMPDIR:-$(mktemp -d)}"
    RATELIMIT_METRICS_FILE="$T/metrics"
    export T RATELIMIT_METRICS_FILE
}

RL_LIB="${BASH_SOURCE[0]%/*}"
. "$RL_LIB/wait.bash"
. "$RL_LIB/redis.bash" || return 1
. "$RL_LIB/hash.bash"
. "$RL_LIB/filter.bash"
. "$RL_LIB/http.bash"
. "$RL_LIB/webservers.bash"
