--[[
token-bucket: GCRA, the token bucket as redis-cell computes it.
  KEYS[i]: string "@" tat: the theoretical arrival time, server time in
  us, kept fractional (the "@" tells it from the other algorithms'
  strings). Emission interval T = window_ms * 1000 / limit us (one token
  per T), capacity burst, tolerance tau = burst * T.
  new_tat = max(tat, now) + T; admit when new_tat - now <= tau, then store
  new_tat with SET PX until it no longer matters (new_tat - now).
  Commands: TIME (shared by the rules of a request), GET, and SET when
  admitted.
  remaining = floor((tau - (new_tat - now)) / T);
  retry_ms = until new_tat - tau (the next token); reset_ms = until tat
  (a full bucket). A tolerance of min(1 us, T / 2) absorbs the rounding of
  the fractional T in doubles so that exactly burst requests fit at once.
]]

-- The stored tat, or nil for none (or a value this algorithm did not write).
local function tb_tat(key)
    local v = rl_read(key, 'GET', key)
    if v and string.byte(v) == 64 then
        return tonumber(string.sub(v, 2))
    end
    return nil
end

-- GCRA for the stored tat (nil: none) at now (us): allowed, remaining,
-- reset_ms, retry_ms, and the new tat when allowed. Shared with the
-- buckets layout (token_bucket_buckets.lua).
local function tb_decide(tat, now, limit, window_ms, burst)
    local T = window_ms * 1000 / limit
    local tau = burst * T
    local eps = rl_clamp(T / 2, 0, 1)
    -- Past tat: a full bucket. A tat beyond tau (the server clock went
    -- back) is capped to an empty bucket rather than block for the jump.
    tat = rl_clamp(tat or now, now, now + tau)
    local ahead = tat + T - now
    if ahead <= tau + eps then
        local rem = floor((tau + eps - ahead) / T)
        return true, rl_clamp(rem, 0, burst - 1), rl_us_to_ms(ahead), 0, tat + T
    end
    local retry = rl_clamp(rl_us_to_ms(ahead - tau - eps), 1, rl_us_to_ms(ahead))
    return false, 0, rl_clamp(rl_us_to_ms(tat - now), retry, rl_us_to_ms(ahead)), retry, nil
end

-- save: the new tat, for commit.
local function tb_check(key, now, limit, window_ms, burst)
    return tb_decide(tb_tat(key), now, limit, window_ms, burst)
end

local function tb_commit(key, now, limit, window_ms, burst, tat)
    -- %.17g: the exact double; tat - now >= T > 0 here, so PX >= 1.
    redis.call('SET', key, string.format('@%.17g', tat), 'PX', rl_us_to_ms(tat - now))
end

-- Give back one admitted request (see main.lua): its token returns, tat
-- goes back by T; a tat no longer ahead of now is a full bucket: no key.
local function tb_refund(key, now, limit, window_ms)
    local tat = tb_tat(key)
    if not tat then
        return
    end
    tat = tat - window_ms * 1000 / limit
    if tat <= now then
        redis.call('DEL', key)
        return
    end
    redis.call('SET', key, string.format('@%.17g', tat), 'PX', rl_us_to_ms(tat - now))
end

ALGO[ID] = {check = tb_check, commit = tb_commit, refund = tb_refund, time = true}
