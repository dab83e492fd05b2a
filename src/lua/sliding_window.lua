--[[
sliding-window (id 2): the sliding-window counter (Cloudflare's estimate).
  KEYS[i]: hash {s = start of the current window in ms, aligned to
  floor(now / window) * window; c = requests admitted in it; p = requests
  admitted in the window before}. O(1) memory, PEXPIRE 2 * window_ms.
  With e = now - s (0 <= e < w), the estimate of the last w ms is
      p * (w - e) / w + c
  and a request is admitted when estimate + 1 <= limit, computed exactly in
  integers as p * (w - e) <= (limit - c - 1) * w.
  remaining = floor(limit - (estimate + 1)) after this request;
  retry_ms = the exact time until the estimate admits one more (in this
  window as p's weight decays, else in the next one as c's weight does);
  reset_ms = until the estimate is 0 (2w - e while c > 0, else w - e).
]]

-- The state as of now: window start, c, p, e (rolled forward, not written).
local function sw_state(key, now, w)
    local start = floor(now.ms / w) * w
    local v = rl_read(key, 'HMGET', key, 's', 'c', 'p')
    local s, c, p = tonumber(v[1]), tonumber(v[2]) or 0, tonumber(v[3]) or 0
    if s == nil or s < start - w then
        c, p = 0, 0
    elseif s < start then
        c, p = 0, c
    end
    -- s > start: the server clock went back (or the window changed); keep
    -- counting in the current window rather than forget the requests.
    return start, c, p, now.ms - start
end

-- ms from now until a request fits, for a denied request.
local function sw_retry(c, p, e, w, limit)
    local avail = limit - c - 1
    if avail >= 0 and p > 0 then
        -- Within this window: p * (w - e - t) <= avail * w.
        return (w - e) - rl_floor_div(avail * w, p)
    end
    -- Next window (c >= limit here, so c > 0): c becomes p there and fits
    -- once c * (w - e2) <= (limit - 1) * w.
    return (w - e) + (w - rl_floor_div((limit - 1) * w, c))
end

local function sw_check(key, now, rule)
    local w, limit = rule.window_ms, rule.limit
    local start, c, p, e = sw_state(key, now, w)
    local avail = limit - c - 1
    local weight = p * (w - e)
    local st = {start = start, c = c, p = p}
    if avail >= 0 and weight <= avail * w then
        st.allowed, st.retry_ms = true, 0
        st.remaining = avail - rl_ceil_div(weight, w)
        st.reset_ms = 2 * w - e
    else
        st.allowed, st.remaining = false, 0
        st.retry_ms = rl_clamp(sw_retry(c, p, e, w, limit), 1, 2 * w)
        st.reset_ms = (c > 0) and (2 * w - e) or (w - e)
    end
    return st
end

local function sw_commit(key, now, rule, st)
    redis.call('HSET', key, 's', st.start, 'c', st.c + 1, 'p', st.p)
    redis.call('PEXPIRE', key, 2 * rule.window_ms)
end

ALGO[2] = {check = sw_check, commit = sw_commit}
