--[[
sliding-window, buckets layout (see buckets.lua; needs
sliding_window.lua before it for the decision)
  N = floor(now_ms / window_ms); the field of hash N is the number of
  requests the client was admitted in window N. c is read from hash N, p
  from hash N - 1, and the estimate is sliding-window's. Hash N matters
  until window N + 1 ends: it expires at (N + 2) * window_ms.
  Commands: TIME, HGET twice, then HINCRBY when admitted (and PEXPIREAT
  when it created the field).
]]

-- save: the hash, the field and its expiry, for commit.
local function swb_check(key, now, limit, w)
    local ms = floor(now / 1000)
    local n = floor(ms / w)
    local base, field = rl_bucket(key)
    local hash = base .. string.format('%.0f', n)
    local prev = base .. string.format('%.0f', n - 1)
    local c = tonumber(rl_read(hash, 'HGET', hash, field)) or 0
    local p = tonumber(rl_read(prev, 'HGET', prev, field)) or 0
    local ok, remaining, reset, retry = sw_decide(c, p, ms - n * w, w, limit)
    if ok then
        return ok, remaining, reset, retry, {hash, field, (n + 2) * w}
    end
    return ok, remaining, reset, retry, nil
end

ALGO[ID] = {check = swb_check, commit = rl_bucket_incr, time = true}
