-- One rate-limit decision: a sliding window counter, atomically, in one round trip.
--
-- KEYS[1]  the caller's prefix, rl:v1:{<caller>}; the two window counters are
--          <prefix>:<window start in ms> and share its hash slot.
-- ARGV[1]  limit (units per window)
-- ARGV[2]  window length in milliseconds
-- ARGV[3]  cost of this hit
--
-- Returns {allowed (1|0), limit, remaining, reset_after_ms, retry_after_ms}.
-- Time is the server's (TIME), so every worker and instance shares one clock.

local prefix = KEYS[1]
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local start = now - (now % window)
local elapsed = now - start

local current_key = prefix .. ':' .. start
local current = tonumber(redis.call('GET', current_key) or '0')
local previous = tonumber(redis.call('GET', prefix .. ':' .. (start - window)) or '0')

-- The previous window counts for the part of it still inside the sliding window.
local estimate = previous * (window - elapsed) / window + current

local allowed = 0
local retry_after = 0
if estimate + cost <= limit then
    allowed = 1
    current = redis.call('INCRBY', current_key, cost)
    -- Needed until the end of the next window, where it is the previous one.
    redis.call('PEXPIRE', current_key, 2 * window - elapsed)
    estimate = estimate + cost
elseif cost > limit then
    retry_after = 2 * window - elapsed
elseif current + cost > limit then
    -- Not before the next window, once enough of this one has slid out.
    local fraction = 1 - (limit - cost) / current
    retry_after = window - elapsed + math.ceil(window * fraction)
else
    -- Later in this window, once enough of the previous one has slid out.
    local fraction = 1 - (limit - cost - current) / previous
    retry_after = math.ceil(window * fraction) - elapsed
end
if retry_after < 1 and allowed == 0 then
    retry_after = 1
end

local reset_after = 0
if current > 0 then
    reset_after = 2 * window - elapsed
elseif previous > 0 then
    reset_after = window - elapsed
end

local remaining = math.floor(limit - estimate)
if remaining < 0 then
    remaining = 0
end
return {allowed, limit, remaining, reset_after, retry_after}
