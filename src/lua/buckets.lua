--[[
buckets: the shared layout of RATELIMIT_STORE=buckets (the algorithms whose
row in src/algorithms.def names buckets files; sliding-log has none).
Clients share small hashes instead of owning a key each, so that a tracked
client costs a hash field (about 70 bytes) rather than a key (about 180).
  For a client whose key in the keys layout is PREFIX NAME ":{" H "}" (H
  the 64 hex digits of its hash), the state lives in the hash
      PREFIX NAME ":{" H[1..3] "}:" N
  (4096 buckets per rule and N, N an epoch: floor(ms / E), E the rule's
  window, or token-bucket's tolerance; decimal), field H[4..64] (61 bytes:
  within hash-max-listpack-value, so a bucket of up to
  hash-max-listpack-entries clients stays a compact listpack). Each hash
  expires as a whole once its N can no longer matter (PEXPIREAT, set when
  a client's field is created).
  Every hash a call touches is a declared key, as Redis Cluster needs (the
  same slot for all of a client's rules: the tag is H[1..3]). The filter
  declares, per rule, the hashes of N - 1, N and N + 1 for the N of its own
  clock (KEYS[k..k+2]) and passes the field (ARGV[a+4], the rule's fifth
  value). When the server's epoch needs a hash outside those (the two
  clocks differ by an epoch or more), check returns nil: the call answers
  {-1, server ms} having written nothing, and the filter calls again with
  the server's epochs.
]]

-- rk of a rule in this layout: its three declared hashes and the field.
local function rl_bucket_rk(k, a)
    return {KEYS[k], KEYS[k + 1], KEYS[k + 2], ARGV[a + 4]}
end

-- The declared hash of epoch n (a number), or nil when it was not declared.
local function rl_bucket_hash(rk, n)
    local first = tonumber(string.match(rk[1], ':(%-?%d+)$'))
    local i = first and n - first + 1
    if not i or i < 1 or i > 3 then
        return nil
    end
    local s = ':' .. string.format('%.0f', n)
    if string.sub(rk[i], -#s) ~= s or #rk[4] ~= 61 then
        error('fcgi-ratelimit: not hashes of the buckets layout: ' .. rk[1])
    end
    return rk[i]
end

-- A commit: charge one request to st = {hash, field, expiry in ms since
-- the epoch}; the hash gets its expiry when this creates the field (the
-- same instant for every field of the hash).
local function rl_bucket_incr(rk, now, limit, window_ms, burst, st)
    if redis.call('HINCRBY', st[1], st[2], 1) == 1 then
        redis.call('PEXPIREAT', st[1], st[3])
    end
end

-- A refund of a counting layout: one request fewer in the client's field
-- of epoch n's hash (the field goes at 0). Nothing when the epoch has
-- moved on past the declared hashes.
local function rl_bucket_decr(rk, n)
    local hash = rl_bucket_hash(rk, n)
    if not hash then
        return
    end
    local c = tonumber(rl_read(hash, 'HGET', hash, rk[4]))
    if c == 1 then
        redis.call('HDEL', hash, rk[4])
    elseif c and c > 1 then
        redis.call('HINCRBY', hash, rk[4], -1)
    end
end
