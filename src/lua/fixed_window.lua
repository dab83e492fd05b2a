--[[
fixed-window (id 0)
  KEYS[i]: string, the number of requests admitted in the current window.
  Created by the client's first request with PEXPIRE window_ms, so a window
  starts at that request (Redis time) and ends when the key expires.
  Admit when count < limit: INCR, and PEXPIRE when INCR created the key.
  A denied request neither increments nor extends the window.
  retry_ms = reset_ms = PTTL. A key without TTL (another client's
  non-atomic INCR/EXPIRE, a manual SET) gets one: no key blocks forever.
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

local function fw_check(key, now, rule)
    local v = rl_read(key, 'GET', key)
    local count = v and tonumber(v)
    if v and not count then
        -- Not a number: nothing we wrote; start afresh.
        redis.call('DEL', key)
        v = false
    end
    count = count or 0
    if count >= rule.limit then
        local ttl = fw_ttl(key, rule.window_ms)
        return {allowed = false, remaining = 0, reset_ms = ttl, retry_ms = ttl}
    end
    local reset = rule.window_ms
    if v then
        reset = fw_ttl(key, rule.window_ms)
    end
    return {allowed = true, remaining = rule.limit - count - 1, reset_ms = reset, retry_ms = 0}
end

local function fw_commit(key, now, rule, st)
    if redis.call('INCR', key) == 1 then
        redis.call('PEXPIRE', key, rule.window_ms)
    end
end

ALGO[0] = {check = fw_check, commit = fw_commit}
