--[[
sliding-window: the sliding-window counter (Cloudflare's estimate).
  KEYS[i]: string "s c p": s = start of the current window in ms, aligned
  to floor(now / window) * window; c = requests admitted in it; p =
  requests admitted in the window before. O(1) memory, SET PX 2 * window_ms.
  Commands: TIME (shared by the rules of a request), GET, and SET when
  admitted.
  With e = now - s (0 <= e < w), the estimate of the last w ms is
      p * (w - e) / w + c
  and a request is admitted when estimate + 1 <= limit, computed exactly in
  integers as p * (w - e) <= (limit - c - 1) * w.
  remaining = floor(limit - (estimate + 1)) after this request;
  retry_ms = the exact time until the estimate admits one more (in this
  window as p's weight decays, else in the next one as c's weight does);
  reset_ms = until the estimate is 0 (2w - e while c > 0, else w - e).
]]

-- Floor of a / b for integers held in doubles (b > 0), exact as long as
-- they stay below 2^53 in magnitude (the division alone may round up).
local function rl_floor_div(a, b)
    local q = floor(a / b)
    if q * b > a then
        q = q - 1
    elseif (q + 1) * b <= a then
        q = q + 1
    end
    return q
end

-- The state as of now (ms): window start, c, p, e (rolled forward, not
-- written). A value that is not "s c p" was not written by this algorithm.
local function sw_state(key, now, w)
    local start = floor(now / w) * w
    local s, c, p
    local v = rl_read(key, 'GET', key)
    if v then
        s, c, p = string.match(v, '^(%d+) (%d+) (%d+)$')
    end
    s, c, p = tonumber(s), tonumber(c) or 0, tonumber(p) or 0
    if s == nil or s < start - w then
        c, p = 0, 0
    elseif s < start then
        c, p = 0, c
    end
    -- s > start: the server clock went back (or the window changed); keep
    -- counting in the current window rather than forget the requests.
    return start, c, p, now - start
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

-- The decision for counts c (this window, starting at start) and p (the
-- window before), e ms into this window: allowed, remaining, reset_ms,
-- retry_ms. Shared with the buckets layout (sliding_window_buckets.lua).
local function sw_decide(c, p, e, w, limit)
    local avail = limit - c - 1
    local weight = p * (w - e)
    if avail >= 0 and weight <= avail * w then
        -- remaining = avail - ceil(weight / w)
        return true, avail + rl_floor_div(-weight, w), 2 * w - e, 0
    end
    local retry = rl_clamp(sw_retry(c, p, e, w, limit), 1, 2 * w)
    return false, 0, (c > 0) and (2 * w - e) or (w - e), retry
end

-- save: the "s c p" to store, for commit.
local function sw_check(key, now, limit, w)
    local start, c, p, e = sw_state(key, floor(now / 1000), w)
    local ok, remaining, reset, retry = sw_decide(c, p, e, w, limit)
    if ok then
        return ok, remaining, reset, retry, string.format('%.0f %.0f %.0f', start, c + 1, p)
    end
    return ok, remaining, reset, retry, nil
end

local function sw_commit(key, now, limit, w, burst, v)
    redis.call('SET', key, v, 'PX', 2 * w)
end

-- Give back one admitted request (see main.lua): c, the count of the
-- window the request was charged to (the stored one), goes down by one, the
-- expiry kept; nothing left in either window: the key goes.
local function sw_refund(key, now, limit, w)
    local v = rl_read(key, 'GET', key)
    local s, c, p
    if v then
        s, c, p = string.match(v, '^(%d+) (%d+) (%d+)$')
    end
    c, p = tonumber(c), tonumber(p)
    if not c or c < 1 then
        return
    end
    if c == 1 and p == 0 then
        redis.call('DEL', key)
        return
    end
    local ttl = redis.call('PTTL', key)
    if ttl < 1 then
        ttl = 2 * w
    end
    redis.call('SET', key, string.format('%s %.0f %.0f', s, c - 1, p), 'PX', ttl)
end

ALGO[ID] = {check = sw_check, commit = sw_commit, refund = sw_refund, time = true}
