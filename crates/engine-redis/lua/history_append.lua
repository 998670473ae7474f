-- History append: stored = max(ts, last + 1, 1), then trim by count and age.
-- KEYS[1] channel base. ARGV: P, ts, body, max_count, max_age_ms. Returns the stored ts.
local h, hl = KEYS[1] .. ':h', KEYS[1] .. ':hl'
local last = tonumber(redis.call('GET', hl) or '0')
local ts = math.max(tonumber(ARGV[2]), last + 1, 1)
redis.call('ZADD', h, ts, num(ts) .. ',' .. ARGV[3])
redis.call('SET', hl, num(ts))
redis.call('ZREMRANGEBYRANK', h, 0, -(tonumber(ARGV[4]) + 1))
redis.call('ZREMRANGEBYSCORE', h, '-inf', '(' .. num(now_ms() - tonumber(ARGV[5])))
return ts
