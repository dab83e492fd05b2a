--[[
sliding-log
  KEYS[i]: sorted set of the admitted requests: score = server time in us,
  member = "<us>:<count>" (unique even for two requests in one us).
  Entries at least window_ms old are dropped (ZREMRANGEBYSCORE), then the
  request is admitted when ZCARD < limit: ZADD + PEXPIRE window_ms. The set
  never holds more than limit entries; cost and memory grow with the limit,
  so prefer sliding-window or token-bucket for large limits.
  retry_ms: until the entry whose expiry brings the count below the limit
  expires; reset_ms: until the newest entry expires.
]]

-- ms until the entry at rank idx (0 = oldest) leaves the window.
local function sl_expiry_ms(key, idx, now, w_us, window_ms)
    local e = redis.call('ZRANGE', key, idx, idx, 'WITHSCORES')
    -- A score in the future (the server clock went back) waits one window.
    return rl_clamp(rl_us_to_ms(tonumber(e[2]) + w_us - now), 1, window_ms)
end

-- save: the entry count, for a unique member.
local function sl_check(key, now, limit, window_ms)
    local w_us = window_ms * 1000
    rl_read(key, 'ZREMRANGEBYSCORE', key, '-inf', now - w_us)
    local n = redis.call('ZCARD', key)
    if n < limit then
        return true, limit - n - 1, window_ms, 0, n
    end
    -- n >= limit (more after the limit was lowered): once the n - limit + 1
    -- oldest entries expire, limit - 1 remain and a request fits.
    local retry = sl_expiry_ms(key, n - limit, now, w_us, window_ms)
    local reset = sl_expiry_ms(key, n - 1, now, w_us, window_ms)
    return false, 0, rl_clamp(reset, retry, reset), retry, n
end

local function sl_commit(key, now, limit, window_ms, burst, n)
    redis.call('ZADD', key, now, string.format('%.0f:%d', now, n))
    redis.call('PEXPIRE', key, window_ms)
end

-- Give back one admitted request (see main.lua): the newest entry goes
-- (this request's, or one admitted a moment after it: the count is the
-- same); an empty set is gone with it. (Its score names it: ZRANGE and
-- ZREMRANGEBYSCORE, the commands a least-privilege user has; two
-- entries of the same microsecond would both go.)
local function sl_refund(key)
    local e = rl_read(key, 'ZRANGE', key, -1, -1, 'WITHSCORES')
    if e[2] then
        redis.call('ZREMRANGEBYSCORE', key, e[2], e[2])
    end
end

ALGO[ID] = {check = sl_check, commit = sl_commit, refund = sl_refund, time = true}
