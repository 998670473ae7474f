-- The whole metadata object: {major, key, item json, ...}. KEYS[1] object base.
local base = KEYS[1]
local out = {tonumber(redis.call('GET', base .. ':mj') or '-1')}
local all = redis.call('HGETALL', base .. ':md')
for i = 1, #all do out[#out + 1] = all[i] end
return out
