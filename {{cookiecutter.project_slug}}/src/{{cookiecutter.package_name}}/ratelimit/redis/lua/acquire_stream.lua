-- Take one concurrent-stream slot for a caller, if one is free.
--
-- KEYS[1]  rl:v1:{<caller>}:streams, a sorted set: member = lease token,
--          score = the lease's expiry (server time, ms)
-- ARGV[1]  the most leases the caller may hold
-- ARGV[2]  lease time to live in milliseconds
-- ARGV[3]  the new lease's token
--
-- Returns {acquired (1|0), leases held after this call}.

local key = KEYS[1]
local max_streams = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)

-- Leases of holders that stopped refreshing them (a crashed worker) lapse here.
redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
local held = redis.call('ZCARD', key)
if held >= max_streams then
    return {0, held}
end
redis.call('ZADD', key, now + ttl, ARGV[3])
-- The set lives as long as its longest lease, whatever TTL other instances use.
local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
redis.call('PEXPIRE', key, math.max(1, tonumber(last[2]) - now))
return {1, held + 1}
