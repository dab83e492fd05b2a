--[[
main: the dispatcher (last in the chunk; see prelude.lua for KEYS, ARGV and
the reply). Phase 1 checks every rule and writes nothing that charges;
phase 2, only when all rules admit the request, commits every rule.
]]

-- ARGV[k] as an integer >= 1, or nil.
local function rl_arg(k)
    local v = tonumber(ARGV[k])
    if v == nil or v < 1 or v ~= floor(v) or v > 9007199254740992 then
        return nil
    end
    return v
end

-- The rules of ARGV, or nil and a message.
local function rl_rules(n)
    if n < 1 or #ARGV ~= 4 * n then
        return nil, 'ERR fcgi-ratelimit: expected 4 arguments per key'
    end
    local rules = {}
    for i = 1, n do
        local b = 4 * (i - 1)
        local algo = ALGO[tonumber(ARGV[b + 1])]
        local rule = {algo = algo, limit = rl_arg(b + 2), window_ms = rl_arg(b + 3),
                      burst = rl_arg(b + 4)}
        if not (algo and rule.limit and rule.window_ms and rule.burst) then
            return nil, string.format('ERR fcgi-ratelimit: bad arguments for key %d', i)
        end
        rules[i] = rule
    end
    return rules
end

local function rl_main()
    local rules, msg = rl_rules(#KEYS)
    if not rules then
        return redis.error_reply(msg)
    end
    local t = redis.call('TIME')
    local us = tonumber(t[1]) * 1000000 + tonumber(t[2])
    local now = {us = us, ms = floor(us / 1000)}
    local st, all = {}, true
    for i = 1, #KEYS do
        st[i] = rules[i].algo.check(KEYS[i], now, rules[i])
        all = all and st[i].allowed
    end
    if all then
        for i = 1, #KEYS do
            rules[i].algo.commit(KEYS[i], now, rules[i], st[i])
        end
    end
    local reply = {all and 1 or 0}
    for i = 1, #KEYS do
        local s = st[i]
        reply[#reply + 1] = s.allowed and 1 or 0
        reply[#reply + 1] = floor(s.remaining)
        reply[#reply + 1] = ceil(s.reset_ms)
        reply[#reply + 1] = ceil(s.retry_ms)
    end
    return reply
end

return rl_main()
