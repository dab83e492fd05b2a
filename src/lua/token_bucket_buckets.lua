--[[
token-bucket, buckets layout (see buckets.lua; needs token_bucket.lua
before it for the decision)
  Epochs of P = max(1000, ceil(tau / 1000)) ms, tau = burst * T the
  bucket's tolerance in us: N = floor(now_ms / P). The field of hash N is the
  client's tat written during epoch N, in us relative to the epoch's start
  (N * P ms; shorter than the absolute time). A tat is at most tau ahead of
  the request that wrote it, so one written in epoch N - 1 is in the past
  once epoch N ends: the tat is the newer of hashes N and N - 1, a new one
  goes into hash N, and hash N expires at (N + 2) * P.
  Commands: TIME, HGET twice, then HSET when admitted (and PEXPIREAT when
  it created the field).
]]

-- The epoch length P in ms: the tolerance rounded up, at least 1 s (so
-- that the filter, which names the hashes of three epochs by its own
-- clock, is never more than half an epoch off).
local function tbb_epoch(limit, window_ms, burst)
    local p = ceil(burst * window_ms / limit)
    if p < 1000 then
        return 1000
    end
    return p
end

-- The tat in hash (epoch n, length p) for field (absolute us), or nil.
local function tbb_tat(hash, n, p, field)
    local v = tonumber(rl_read(hash, 'HGET', hash, field))
    return v and v + n * p * 1000
end

-- The client's tat and the epoch whose hash holds it (nil, nil: none);
-- nil, false when the declared hashes are not epochs n and n - 1.
local function tbb_find(rk, n, p)
    local hash, prev = rl_bucket_hash(rk, n), rl_bucket_hash(rk, n - 1)
    if not hash or not prev then
        return nil, false
    end
    local tat, m = tbb_tat(hash, n, p, rk[4]), n
    local old = tbb_tat(prev, n - 1, p, rk[4])
    if old and (not tat or old > tat) then
        tat, m = old, n - 1
    end
    return tat, tat and m
end

-- save: {hash, field, expiry, tat relative to the epoch}, for commit.
local function tbb_check(rk, now, limit, window_ms, burst)
    local p = tbb_epoch(limit, window_ms, burst)
    local n = floor(floor(now / 1000) / p)
    local tat, m = tbb_find(rk, n, p)
    if m == false then
        return nil
    end
    local ok, remaining, reset, retry, new = tb_decide(tat, now, limit, window_ms, burst)
    if ok then
        return ok, remaining, reset, retry,
            {rl_bucket_hash(rk, n), rk[4], (n + 2) * p, new - n * p * 1000}
    end
    return ok, remaining, reset, retry, nil
end

-- Store tat (absolute us) as the field of epoch n's hash.
local function tbb_store(hash, field, n, p, tat)
    -- %.17g: the exact double.
    if redis.call('HSET', hash, field, string.format('%.17g', tat - n * p * 1000)) == 1 then
        redis.call('PEXPIREAT', hash, (n + 2) * p)
    end
end

local function tbb_commit(rk, now, limit, window_ms, burst, st)
    if redis.call('HSET', st[1], st[2], string.format('%.17g', st[4])) == 1 then
        redis.call('PEXPIREAT', st[1], st[3])
    end
end

-- Give back one admitted request (see main.lua): the tat goes back by T
-- in the hash that holds it; one no longer ahead of now is a full
-- bucket: the field goes.
local function tbb_refund(rk, now, limit, window_ms, burst)
    local p = tbb_epoch(limit, window_ms, burst)
    local n = floor(floor(now / 1000) / p)
    local tat, m = tbb_find(rk, n, p)
    if not tat then
        return
    end
    local hash = rl_bucket_hash(rk, m)
    tat = tat - window_ms * 1000 / limit
    if tat <= now then
        redis.call('HDEL', hash, rk[4])
        return
    end
    tbb_store(hash, rk[4], m, p, tat)
end

ALGO[ID] = {check = tbb_check, commit = tbb_commit, refund = tbb_refund, time = true,
    nkeys = 3, nargs = 5, rk = rl_bucket_rk}
