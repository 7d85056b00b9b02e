-- Extend this holder's leases of one caller; leases already gone stay gone.
--
-- KEYS[1]  rl:v1:{<caller>}:streams
-- ARGV[1]  lease time to live in milliseconds
-- ARGV[2..] tokens of the leases to extend
--
-- Returns the number of leases extended.

local key = KEYS[1]
local ttl = tonumber(ARGV[1])

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)

local extended = 0
for i = 2, #ARGV do
    -- XX: a lease released (or expired) meanwhile is not brought back.
    extended = extended + redis.call('ZADD', key, 'XX', 'CH', now + ttl, ARGV[i])
end
local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
if last[2] then
    redis.call('PEXPIRE', key, math.max(1, tonumber(last[2]) - now))
end
return extended
