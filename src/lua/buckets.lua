--[[
buckets: the shared layout of RATELIMIT_STORE=buckets (the algorithms whose
row in src/algorithms.def names buckets files; sliding-log has none).
Clients share small hashes instead of owning a key each, so that a tracked
client costs a hash field (about 70 bytes) rather than a key (about 180).
  KEYS[i] is the client's key of the keys layout, PREFIX NAME ":{" H "}"
  with H the 64 hex digits of the client's hash. The state lives in the hash
      PREFIX NAME ":{" H[1..3] "}:" N
  (4096 buckets per rule and N, N a window index or an epoch, decimal),
  field H[4..64] (61 bytes: within hash-max-listpack-value, so a bucket of
  up to hash-max-listpack-entries clients stays a compact listpack). Each
  hash expires as a whole once its N can no longer matter (PEXPIREAT, set
  when a client's field is created). The key Redis is told about (KEYS[i])
  is not the one used: fine on a single Redis, not on Redis Cluster.
]]

-- The hash name before N, and the field, for KEYS[i].
local function rl_bucket(key)
    local n = #key
    if n < 68 or string.sub(key, n - 66, n - 65) ~= ':{' or string.sub(key, n) ~= '}' then
        error('fcgi-ratelimit: not a key of the buckets layout: ' .. key)
    end
    return string.sub(key, 1, n - 65) .. string.sub(key, n - 64, n - 62) .. '}:',
        string.sub(key, n - 61, n - 1)
end

-- A commit: charge one request to st = {hash, field, expiry in ms since
-- the epoch}; the hash gets its expiry when this creates the field (the
-- same instant for every field of the hash).
local function rl_bucket_incr(key, now, limit, window_ms, burst, st)
    if redis.call('HINCRBY', st[1], st[2], 1) == 1 then
        redis.call('PEXPIREAT', st[1], st[3])
    end
end
