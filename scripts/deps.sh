# deps.sh - sourced by ./demo, ./run-tests and bench/run: install the Debian
# packages fcgi-ratelimit needs when they are missing.
#
#   deps_install build|demo|test|bench

# Names valid on Debian 12 (bookworm) and 13 (trixie) alike; installed with
# --no-install-recommends, so everything a script calls is listed, even
# what a full system has anyway: libc6-dev (gcc only recommends it),
# iproute2 (ss), procps (pgrep, ps), coreutils (timeout, sha256sum),
# util-linux (prlimit).
# libclang-rt-dev is llvm-defaults' name for the release's own clang
# runtime (libFuzzer, sanitizers): 14 on bookworm, 19 on trixie.
deps_build="gcc libc6-dev make autoconf automake pkg-config libfcgi-dev libhiredis-dev libjson-c-dev libssl-dev"
deps_demo="$deps_build redis-server redis-tools lighttpd curl jq"
# spawn-fcgi starts the suites' FastCGI workers; clang + libclang-rt-dev:
# make fuzz (libFuzzer) and the clang build; valgrind: make check-valgrind;
# cppcheck, clang-format, clang-tools (scan-build), python3 (depgraph): scripts/lint;
# faketime: buckets.bats runs a worker whose clock is off the server's;
# prometheus: its promtool checks the metrics text and README's rules.
deps_test="$deps_demo git python3 coreutils util-linux iproute2 procps apache2 libapache2-mod-fcgid bats bats-assert bats-support spawn-fcgi clang libclang-rt-dev valgrind cppcheck clang-format clang-tools faketime prometheus"
# ./run-tests --valkey: the server-facing suites against Valkey (Debian 13+).
deps_valkey="$deps_test valkey-server valkey-tools"
deps_bench="$deps_test wrk fcgiwrap nginx gnuplot-nox python3-fastapi python3-uvicorn python3-redis"

deps_missing() {
    local p
    for p in "$@"; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || echo "$p"
    done
}

deps_install() {
    local list missing
    eval "list=\$deps_$1"
    # shellcheck disable=SC2086
    missing=$(deps_missing $list | tr '\n' ' ')
    [ -z "${missing// /}" ] && return 0
    if [ "$(id -u)" != 0 ]; then
        echo "missing Debian packages: $missing" >&2
        echo "install them (as root): apt-get install $missing" >&2
        return 1
    fi
    echo "== installing: $missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null &&
        # shellcheck disable=SC2086
        apt-get install -y -qq --no-install-recommends $missing >/dev/null ||
        { echo "apt-get install failed: $missing" >&2; return 1; }
    # Debian starts the services it installs where it can: the tests run
    # their own private instances and need nothing of the system ones.
    return 0
}
