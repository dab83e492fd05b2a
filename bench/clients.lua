-- clients.lua - the wrk script of bench/run's (b-tcp), (b-cluster) and
-- (b-sentinel): every request from another client, as a proxy on
-- 127.0.0.1 forwards it (X-Forwarded-For 10.0.x.y, 65536 addresses in
-- turn, each wrk thread starting elsewhere), so that the keys spread over
-- a cluster's slots. The requests are built once per thread, in init.
local started = 0

function setup(thread)
    thread:set("first", started * 7919)
    started = started + 1
end

local reqs, n = {}, 0

function init(args)
    for i = 0, 65535 do
        reqs[i + 1] = wrk.format(nil, nil, {
            ["X-Forwarded-For"] = string.format("10.0.%d.%d", math.floor(i / 256), i % 256)
        })
    end
    n = first or 0
end

function request()
    n = n % 65536 + 1
    return reqs[n]
end
