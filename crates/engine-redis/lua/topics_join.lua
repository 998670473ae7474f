-- Topic join: 1 added, 0 already a publisher, -1 over the per-member limit.
-- KEYS[1] channel base. ARGV: P, field (<len(topic)>:<topic><user>), user, meta, max.
local tp, tc = KEYS[1] .. ':tp', KEYS[1] .. ':tc'
if redis.call('HEXISTS', tp, ARGV[2]) == 1 then return 0 end
local n = tonumber(redis.call('HGET', tc, ARGV[3]) or '0')
if n >= tonumber(ARGV[5]) then return -1 end
redis.call('HSET', tp, ARGV[2], ARGV[4])
redis.call('HINCRBY', tc, ARGV[3], 1)
return 1
