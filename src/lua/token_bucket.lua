--[[
token-bucket (id 3): GCRA, the token bucket as redis-cell computes it.
  KEYS[i]: hash {tat = theoretical arrival time, server time in us, kept
  fractional}. Emission interval T = window_ms * 1000 / limit us (one
  token per T), capacity burst, tolerance tau = burst * T.
  new_tat = max(tat, now) + T; admit when new_tat - now <= tau, then store
  new_tat with PEXPIRE until it no longer matters (new_tat - now).
  remaining = floor((tau - (new_tat - now)) / T);
  retry_ms = until new_tat - tau (the next token); reset_ms = until tat
  (a full bucket). A tolerance of min(1 us, T / 2) absorbs the rounding of
  the fractional T in doubles so that exactly burst requests fit at once.
]]

local function tb_check(key, now, rule)
    local T = rule.window_ms * 1000 / rule.limit
    local tau = rule.burst * T
    local eps = rl_clamp(T / 2, 0, 1)
    local tat = tonumber(rl_read(key, 'HGET', key, 'tat')) or now.us
    -- Past tat: a full bucket. A tat beyond tau (the server clock went
    -- back) is capped to an empty bucket rather than block for the jump.
    tat = rl_clamp(tat, now.us, now.us + tau)
    local ahead = tat + T - now.us
    if ahead <= tau + eps then
        local rem = floor((tau + eps - ahead) / T)
        return {allowed = true, remaining = rl_clamp(rem, 0, rule.burst - 1),
                reset_ms = rl_us_to_ms(ahead), retry_ms = 0, tat = tat + T, ttl = rl_us_to_ms(ahead)}
    end
    local retry = rl_clamp(rl_us_to_ms(ahead - tau - eps), 1, rl_us_to_ms(ahead))
    return {allowed = false, remaining = 0, retry_ms = retry,
            reset_ms = rl_clamp(rl_us_to_ms(tat - now.us), retry, rl_us_to_ms(ahead))}
end

local function tb_commit(key, now, rule, st)
    redis.call('HSET', key, 'tat', st.tat)
    redis.call('PEXPIRE', key, st.ttl)
end

ALGO[3] = {check = tb_check, commit = tb_commit}
