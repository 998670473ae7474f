-- Removes every membership of the users whose deadline is at or before ARGV[2]; one
-- script, so that of several nodes sweeping at once exactly one removes each member.
-- ARGV: P, now_ms, max users. Returns {users swept, cref, user, record json, ...}.
local due = P .. 'pdue'
local users = redis.call('ZRANGEBYSCORE', due, '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {#users}
for _, au in ipairs(users) do
  redis.call('ZREM', due, au)
  local app, user = split_len(au)
  local pa = ukey(app, user, 'pa')
  for _, cref in ipairs(redis.call('SMEMBERS', pa)) do
    local base = tag(cref)
    local rec = redis.call('HGET', base .. ':pm', user)
    if rec then
      redis.call('HDEL', base .. ':pm', user)
      redis.call('ZREM', base .. ':pv', user)
      out[#out + 1] = cref
      out[#out + 1] = user
      out[#out + 1] = rec
    end
  end
  redis.call('DEL', pa, ukey(app, user, 'pw'))
end
return out
