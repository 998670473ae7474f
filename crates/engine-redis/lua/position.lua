-- The channel's epoch (created when absent) and latest offset.
-- KEYS[1] channel base. ARGV: P, meta_ttl_ms.
local meta = KEYS[1] .. ':m'
local epoch = redis.call('HGET', meta, 'e')
if not epoch then
  local t = redis.call('TIME')
  epoch = num(tonumber(t[1]) * 1000000 + tonumber(t[2]))
  redis.call('HSET', meta, 'e', epoch)
  redis.call('PEXPIRE', meta, tonumber(ARGV[2]))
end
return {epoch, tonumber(redis.call('HGET', meta, 'o') or '0')}
