--[[
main: the dispatcher (last in the chunk; see prelude.lua for KEYS, ARGV and
the reply). Phase 1 checks every rule and writes nothing that charges;
phase 2, only when all rules admit the request, commits every rule.
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

-- Rule i's algorithm and numbers, or nil (then the error reply).
local function rl_rule(i)
    local b = 4 * (i - 1)
    local algo = ALGO[tonumber(ARGV[b + 1])]
    local limit, window, burst = rl_arg(b + 2), rl_arg(b + 3), rl_arg(b + 4)
    if algo and limit and window and burst then
        return algo, limit, window, burst
    end
    return nil
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
local function rl_refund(n)
    local now = nil
    for i = 1, n do
        local algo, limit, window, burst = rl_rule(i)
        if not algo or not algo.refund then
            return redis.error_reply(string.format('ERR fcgi-ratelimit: cannot refund key %d', i))
        end
        if algo.time then
            now = rl_now(now)
        end
        algo.refund(KEYS[i], now, limit, window, burst)
    end
    return n
end

local function rl_main()
    local n = #KEYS
    if n >= 1 and #ARGV == 4 * n + 1 and ARGV[#ARGV] == 'refund' then
        return rl_refund(n)
    end
    if n < 1 or #ARGV ~= 4 * n then
        return redis.error_reply('ERR fcgi-ratelimit: expected 4 arguments per key')
    end
    -- st: per rule, what phase 2 needs (algorithm, numbers, what check
    -- handed to commit), flat, so that ARGV is parsed once (tonumber is a
    -- strtod) in one table.
    local reply, st, all, now = {0}, {}, true, nil
    for i = 1, n do
        local algo, limit, window, burst = rl_rule(i)
        if not algo then
            return redis.error_reply(string.format('ERR fcgi-ratelimit: bad arguments for key %d', i))
        end
        if algo.time then
            now = rl_now(now)
        end
        local ok, remaining, reset, retry, s = algo.check(KEYS[i], now, limit, window, burst)
        local j = 4 * i - 2
        reply[j], reply[j + 1], reply[j + 2], reply[j + 3] =
            ok and 1 or 0, floor(remaining), ceil(reset), ceil(retry)
        j = 5 * i - 4
        st[j], st[j + 1], st[j + 2], st[j + 3], st[j + 4] = algo, limit, window, burst, s
        all = all and ok
    end
    if all then
        reply[1] = 1
        for i = 1, n do
            local j = 5 * i - 4
            st[j].commit(KEYS[i], now, st[j + 1], st[j + 2], st[j + 3], st[j + 4])
        end
    end
    return reply
end

return rl_main()
