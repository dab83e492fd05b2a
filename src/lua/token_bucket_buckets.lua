--[[
token-bucket, buckets layout (see buckets.lua; needs token_bucket.lua
before it for the decision)
  Epochs of P = max(1, ceil(tau / 1000)) ms, tau = burst * T the bucket's
  tolerance in us: N = floor(now_ms / P). The field of hash N is the
  client's tat written during epoch N, in us relative to the epoch's start
  (N * P ms; shorter than the absolute time). A tat is at most tau ahead of
  the request that wrote it, so one written in epoch N - 1 is in the past
  once epoch N ends: the tat is the newer of hashes N and N - 1, a new one
  goes into hash N, and hash N expires at (N + 2) * P.
  Commands: TIME, HGET twice, then HSET when admitted (and PEXPIREAT when
  it created the field).
]]

-- The tat of field in hash base .. n (absolute us), or nil.
local function tbb_tat(base, n, p, field)
    local hash = base .. string.format('%.0f', n)
    local v = tonumber(rl_read(hash, 'HGET', hash, field))
    return v and v + n * p * 1000
end

-- save: {hash, field, expiry, tat relative to the epoch}, for commit.
local function tbb_check(key, now, limit, window_ms, burst)
    local p = rl_clamp(ceil(burst * window_ms / limit), 1, burst * window_ms)
    local n = floor(floor(now / 1000) / p)
    local base, field = rl_bucket(key)
    local tat = tbb_tat(base, n, p, field)
    local old = tbb_tat(base, n - 1, p, field)
    if old and (not tat or old > tat) then
        tat = old
    end
    local ok, remaining, reset, retry, new = tb_decide(tat, now, limit, window_ms, burst)
    if ok then
        return ok, remaining, reset, retry,
            {base .. string.format('%.0f', n), field, (n + 2) * p, new - n * p * 1000}
    end
    return ok, remaining, reset, retry, nil
end

local function tbb_commit(key, now, limit, window_ms, burst, st)
    -- %.17g: the exact double.
    if redis.call('HSET', st[1], st[2], string.format('%.17g', st[4])) == 1 then
        redis.call('PEXPIREAT', st[1], st[3])
    end
end

ALGO[ID] = {check = tbb_check, commit = tbb_commit, time = true}
