--[[
main: the dispatcher (last in the chunk; see prelude.lua for KEYS, ARGV and
the reply). Phase 1 checks every rule and writes nothing that charges;
phase 2, only when all rules admit the request, commits every rule. A
shadow rule (its id sent as -1 - id) never denies: over its limit it does
not stop the others' commit, and is not committed itself. A rule
of the buckets layout whose declared hashes are not the ones the server's
clock needs ends phase 1 early with {-1, server time in ms}, nothing
charged.
With one more ARGV, "refund", it gives back instead one request each rule
admitted a moment ago (a request checked in several calls, one per Redis
Cluster slot, that another call denied); the reply is the number of rules.
]]

-- ARGV[k] as an integer >= 1, or nil.
local function rl_arg(k)
    local v = tonumber(ARGV[k])
    if v == nil or v < 1 or v ~= floor(v) or v > 9007199254740992 then
        return nil
    end
    return v
end

-- The rules of the call, parsed once (tonumber is a strtod): a flat list,
-- 5 values per rule (algorithm, limit, window_ms, burst, rk), whether
-- ARGV ends with "refund", and the set of shadow rules (by number). A rule takes algo.nkeys KEYS (1 unless its
-- layout says) and algo.nargs ARGV (4 unless it says); rk is its KEYS
-- value, or what algo.rk(k, a) makes of KEYS[k...] and ARGV[a...]. nil
-- and the error reply when KEYS and ARGV do not fit together.
local function rl_rules()
    local refund = #ARGV > 0 and ARGV[#ARGV] == 'refund'
    local nargv = refund and #ARGV - 1 or #ARGV
    local st, shadow, k, a = {}, {}, 1, 1
    while a <= nargv do
        local id = tonumber(ARGV[a])
        local i = #st / 5 + 1
        if id and id < 0 then
            id, shadow[i] = -1 - id, true
        end
        local algo = ALGO[id]
        local limit, window, burst = rl_arg(a + 1), rl_arg(a + 2), rl_arg(a + 3)
        if not (algo and limit and window and burst) then
            return nil, redis.error_reply(string.format('ERR fcgi-ratelimit: bad arguments for rule %d', i))
        end
        local nk, na = algo.nkeys or 1, algo.nargs or 4
        if k + nk - 1 > #KEYS or a + na - 1 > nargv then
            break
        end
        local j = #st
        st[j + 1], st[j + 2], st[j + 3], st[j + 4] = algo, limit, window, burst
        st[j + 5] = algo.rk and algo.rk(k, a) or KEYS[k]
        k, a = k + nk, a + na
    end
    if #st == 0 or k ~= #KEYS + 1 or a ~= nargv + 1 then
        return nil, redis.error_reply('ERR fcgi-ratelimit: KEYS and ARGV do not match (4 arguments per rule, 5 in the buckets layout)')
    end
    return st, refund, shadow
end

-- The server's time in microseconds, asked once per call: now when the
-- call already has it, else TIME.
local function rl_now(now)
    if now then
        return now
    end
    local t = redis.call('TIME')
    return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- Give back one request to every rule (see the top).
local function rl_refund(st)
    local now = nil
    for j = 1, #st, 5 do
        local algo = st[j]
        if not algo.refund then
            return redis.error_reply(string.format('ERR fcgi-ratelimit: cannot refund rule %d', (j + 4) / 5))
        end
        if algo.time then
            now = rl_now(now)
        end
        algo.refund(st[j + 4], now, st[j + 1], st[j + 2], st[j + 3])
    end
    return #st / 5
end

local function rl_main()
    local st, refund, shadow = rl_rules()
    if not st then
        return refund
    end
    if refund then
        return rl_refund(st)
    end
    -- sv: per rule, what check handed to commit; adm: whether it admitted.
    local reply, sv, adm, all, now = {0}, {}, {}, true, nil
    local n = #st / 5
    for i = 1, n do
        local j = 5 * i - 4
        local algo = st[j]
        if algo.time then
            now = rl_now(now)
        end
        local ok, remaining, reset, retry, s = algo.check(st[j + 4], now, st[j + 1], st[j + 2], st[j + 3])
        if ok == nil then
            -- The rule's keys are for other windows than the server's
            -- clock is in: nothing was charged; the filter declares the
            -- right ones and calls again.
            return {-1, floor(now / 1000)}
        end
        local r = 4 * i - 2
        reply[r], reply[r + 1], reply[r + 2], reply[r + 3] =
            ok and 1 or 0, floor(remaining), ceil(reset), ceil(retry)
        sv[i], adm[i] = s, ok
        all = all and (ok or shadow[i] == true)
    end
    if all then
        reply[1] = 1
        for i = 1, n do
            local j = 5 * i - 4
            if adm[i] then
                st[j].commit(st[j + 4], now, st[j + 1], st[j + 2], st[j + 3], sv[i])
            end
        end
    end
    return reply
end

return rl_main()
