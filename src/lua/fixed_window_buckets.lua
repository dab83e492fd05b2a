--[[
fixed-window, buckets layout (see buckets.lua)
  Windows aligned to the clock: N = floor(now_ms / window_ms), the window
  ends at (N + 1) * window_ms, when its hash expires. The field is the
  number of requests the client was admitted in window N.
  Commands: TIME, HGET, then HINCRBY when admitted (and PEXPIREAT when it
  created the field). retry_ms = reset_ms = until the window ends.
]]

-- save: the hash and the field, for commit.
local function fwb_check(rk, now, limit, window_ms)
    local ms = floor(now / 1000)
    local n = floor(ms / window_ms)
    local hash = rl_bucket_hash(rk, n)
    if not hash then
        return nil
    end
    local count = tonumber(rl_read(hash, 'HGET', hash, rk[4])) or 0
    local reset = rl_clamp((n + 1) * window_ms - ms, 1, window_ms)
    if count >= limit then
        return false, 0, reset, reset, nil
    end
    return true, limit - count - 1, reset, 0, {hash, rk[4], (n + 1) * window_ms}
end

-- Give back one admitted request (see main.lua) in the current window (at
-- a window's end, one round trip after the charge, there may be none).
local function fwb_refund(rk, now, limit, window_ms)
    rl_bucket_decr(rk, floor(floor(now / 1000) / window_ms))
end

ALGO[ID] = {check = fwb_check, commit = rl_bucket_incr, refund = fwb_refund, time = true,
    nkeys = 3, nargs = 5, rk = rl_bucket_rk}
