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
local function swb_check(rk, now, limit, w)
    local ms = floor(now / 1000)
    local n = floor(ms / w)
    local hash, prev = rl_bucket_hash(rk, n), rl_bucket_hash(rk, n - 1)
    if not hash or not prev then
        return nil
    end
    local c = tonumber(rl_read(hash, 'HGET', hash, rk[4])) or 0
    local p = tonumber(rl_read(prev, 'HGET', prev, rk[4])) or 0
    local ok, remaining, reset, retry = sw_decide(c, p, ms - n * w, w, limit)
    if ok then
        return ok, remaining, reset, retry, {hash, rk[4], (n + 2) * w}
    end
    return ok, remaining, reset, retry, nil
end

-- Give back one admitted request (see main.lua) in the current window (a
-- give-back one round trip after the charge: at a window's end it may
-- miss the charge, which then counts as the previous window's).
local function swb_refund(rk, now, limit, w)
    rl_bucket_decr(rk, floor(floor(now / 1000) / w))
end

ALGO[ID] = {check = swb_check, commit = rl_bucket_incr, refund = swb_refund, time = true,
    nkeys = 3, nargs = 5, rk = rl_bucket_rk}
