--[[
fixed-window
  KEYS[i]: string, the number of requests admitted in the current window.
  Created by the client's first request with SET 1 PX window_ms, so a
  window starts at that request (Redis time) and ends when the key
  expires; needs no TIME. Admit when count < limit: INCR (or the SET of a
  new window). A denied request neither increments nor extends the window.
  Commands: GET, then PTTL when the key exists, then INCR or SET when
  admitted. retry_ms = reset_ms = PTTL. A key without TTL (another
  client's non-atomic INCR/EXPIRE, a manual SET) gets one: no key blocks
  forever.
]]

-- PTTL of an existing key, giving it a TTL of window_ms when it has none.
local function fw_ttl(key, window_ms)
    local ttl = redis.call('PTTL', key)
    if ttl < 0 then
        redis.call('PEXPIRE', key, window_ms)
        return window_ms
    end
    return rl_clamp(ttl, 1, ttl)
end

-- save: true when the key exists (commit INCRs), false for a new window.
local function fw_check(key, now, limit, window_ms)
    local v = rl_read(key, 'GET', key)
    if not v then
        return true, limit - 1, window_ms, 0, false
    end
    local count = tonumber(v)
    if not count then
        -- Not a number: nothing this algorithm wrote; start afresh.
        redis.call('DEL', key)
        return true, limit - 1, window_ms, 0, false
    end
    local ttl = fw_ttl(key, window_ms)
    if count >= limit then
        return false, 0, ttl, ttl, true
    end
    return true, limit - count - 1, ttl, 0, true
end

local function fw_commit(key, now, limit, window_ms, burst, exists)
    if exists then
        redis.call('INCR', key)
    else
        redis.call('SET', key, 1, 'PX', window_ms)
    end
end

-- Give back one admitted request (see main.lua): the count goes down by
-- one, the expiry kept; a count of 1 was this request's own new window,
-- which goes. (SET, not DECR: the commands a least-privilege user has.)
local function fw_refund(key)
    local count = tonumber(rl_read(key, 'GET', key))
    if count == 1 then
        redis.call('DEL', key)
    elseif count and count > 1 then
        redis.call('SET', key, string.format('%.0f', count - 1), 'KEEPTTL')
    end
end

ALGO[ID] = {check = fw_check, commit = fw_commit, refund = fw_refund, time = false}
