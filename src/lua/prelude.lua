--[[
fcgi-ratelimit: the limiter script. The Makefile concatenates prelude.lua,
one or more algorithm files and main.lua (last) into one chunk: one script
per algorithm (what a request whose rules share one algorithm runs) and one
with all of them (for requests whose rules mix algorithms). Each is loaded
with SCRIPT LOAD and run with EVALSHA. One call checks every rule of a
request and, only when all of them admit it, charges all of them: atomic,
one round trip, and the time is the server's (TIME), never the web
server's clock.

Redis runs the whole chunk on every call: every local function and table
below is created anew each time. So the chunks hold only what a call
needs, the rules travel as plain numbers (no table per rule), and TIME is
called only when an algorithm of the request needs it.

EVALSHA sha numkeys key [key ...] algo limit window_ms burst [algo limit window_ms burst ...]
  per applied rule, in order (the keys layout: one key and 4 ARGV):
  KEYS         the key of the rule for this client (a string or a sorted
               set, by algorithm)
  ARGV         script id: the algorithm's row in src/algorithms.def
               (enum rl_algo, from 0), plus the number of rows for
               RATELIMIT_STORE=buckets; -1 - that id for a shadow rule
               (RATELIMIT_RULES' word shadow: it never denies; over its
               limit it is not charged, the others are);
               limit: requests per window, integer >= 1;
               window_ms: the window in milliseconds, integer >= 1;
               burst: token-bucket capacity, integer >= 1 (others ignore it)
Reply: array of 1 + 4 per rule integers (for rule i:)
  [1]          allowed_all: 1 when every rule but the shadow ones admits the
               request (then every rule that admitted it was charged), 0
               otherwise (then none was)
  [4i-2]       allowed: 1 when rule i alone admits the request, else 0
  [4i-1]       remaining: requests left after this one if admitted (0 when
               denied)
  [4i]         reset_ms: ms until rule i's quota is whole again
  [4i+1]       retry_ms: ms until a request would be admitted (0 when
               allowed, >= 1 when denied)
  A rule of the buckets layout (RATELIMIT_STORE=buckets, see buckets.lua)
  takes 3 KEYS (its hashes of three consecutive epochs) and 5 ARGV (the
  four numbers, then its field); for such a rule the reply may instead be
  {-1, the server's time in ms}: its epoch is not one of those declared,
  nothing was charged, and the filter calls again with the right hashes.
Errors: "ERR fcgi-ratelimit: ..." for malformed arguments or an algorithm
this script does not hold; errors raised by the commands themselves are
passed on.

EVALSHA sha numkeys key [key ...] algo limit window_ms burst [...] refund
  the same, and the word "refund" last: give back one request that this
  call's rules admitted a moment ago (see main.lua; the filter sends only
  rules that were charged, shadow or not). Reply: the number of rules.

An algorithm registers ALGO[ID] = {check = check, commit = commit,
refund = refund (optional), time = bool, and for a layout of more than one
key per rule nkeys = n, nargs = n, rk = function(k, a)}
(the build writes its script id for ID: see src/lua/embed.sh):
  check(key, now, limit, window_ms, burst)
      -> allowed (boolean), remaining, reset_ms, retry_ms, save
      reads the state and decides; it must not charge anything (it may
      repair state: a missing TTL, expired entries, a key of another type);
      nil when its declared keys do not fit the server's clock
  commit(key, now, limit, window_ms, burst, save)
      charges one request; called only when all rules admitted (a shadow
      rule over its limit excepted, and not committed); save is what check
      returned for it
  refund(key, now, limit, window_ms, burst)
      gives back one admitted request (a request checked in several calls
      on a Redis Cluster, one per slot, that another call denied)
  key is KEYS[k] for the rule, or rk(k, a) when the algorithm has one
  (k, a: the rule's first KEYS and ARGV index)
  now  server time in microseconds when time is true for any rule of the
       request, else nil
The algorithms' keys hold different types or, when two are strings,
values the others' parsers refuse (fixed-window: an integer,
sliding-window: "s c p", token-bucket: "@tat"): a rule that changed its
algorithm finds the old key unusable and starts afresh (rl_read, below).
All numbers stay below 2^53 for any sane configuration, so Lua's doubles
hold them exactly; numbers passed to redis.call keep full precision, but
tostring() does not (%.14g): build strings with string.format.
]]

local ALGO = {}
local floor, ceil = math.floor, math.ceil

-- Run a reading command on key. A key that holds another type was left by
-- the algorithm this rule used before RATELIMIT_ALGORITHM changed (or by an
-- older version of this script): discard it (a fresh start) rather than
-- fail with WRONGTYPE until it expires.
local function rl_read(key, ...)
    local r = redis.pcall(...)
    if type(r) == 'table' and r.err then
        if string.sub(r.err, 1, 9) ~= 'WRONGTYPE' then
            error(r)
        end
        redis.call('DEL', key)
        r = redis.call(...)
    end
    return r
end

-- Whole milliseconds, rounded up, for a delay in microseconds.
local function rl_us_to_ms(us)
    return ceil(us / 1000)
end

local function rl_clamp(v, lo, hi)
    if v < lo then
        return lo
    elseif v > hi then
        return hi
    end
    return v
end
