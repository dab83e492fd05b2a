# hash.bash - hashing as the filter does it (the Redis key of a client) and
# as the tests check bodies (a file's SHA-256).

# id_hash KIND VALUE: the 64 hex digits that stand for a client in Redis,
# SHA-256 of KIND, a NUL and VALUE (KIND: ip, xff for an X-Forwarded-For
# entry that is no address, header). The bucket store splits them: the
# first 3 name the hash (in a hash tag), the other 61 the field.
id_hash() {
    printf '%s\0%s' "$1" "$2" | sha256sum | cut -c1-64
}

# rl_key KIND VALUE [NAME]: the key of that client for rule NAME (default
# "default") in the keys store: the prefix "ratelimit:", NAME, ":{", the
# hash, "}" (a Redis Cluster hash tag).
rl_key() {
    echo "ratelimit:${3:-default}:{$(id_hash "$1" "$2")}"
}

# ip_key ADDR [NAME], xff_key ENTRY [NAME], header_key VALUE [NAME]: rl_key
# of an address, an opaque X-Forwarded-For entry, a header's value.
ip_key() { rl_key ip "$1" "${2:-}"; }
xff_key() { rl_key xff "$1" "${2:-}"; }
header_key() { rl_key header "$1" "${2:-}"; }

# sha256_of FILE: the SHA-256 of FILE's bytes, in hex.
sha256_of() {
    sha256sum <"$1" | cut -c1-64
}
