-- Presence enter: add or update a member; returns 1 (became visible), -1 (visible turned
-- quiet) or 0. The record names the node that entered it, so that when that node dies
-- any other node's sweep removes it. KEYS[1] channel base. ARGV: P, app, cref, user,
-- quiet (0/1), state json, node id.
local base, app, cref, user = KEYS[1], ARGV[2], ARGV[3], ARGV[4]
local quiet = tonumber(ARGV[5])
local pm = base .. ':pm'
local rec = redis.call('HGET', pm, user)
local was = nil
local st = {}
local node = ARGV[7]
if rec then
  local r = cjson.decode(rec)
  was = r.q
  st = r.s
  if r.n and r.n ~= node then redis.call('SREM', nkey(r.n), mref(cref, user)) end
end
for k, v in pairs(cjson.decode(ARGV[6])) do st[k] = v end
redis.call('HSET', pm, user, cjson.encode({q = quiet, s = st, n = node}))
redis.call('SADD', nkey(node), mref(cref, user))
if quiet == 0 then
  redis.call('ZADD', base .. ':pv', 0, user)
  redis.call('ZADD', ukey(app, user, 'pw'), 0, cref)
else
  redis.call('ZREM', base .. ':pv', user)
  redis.call('ZREM', ukey(app, user, 'pw'), cref)
end
redis.call('SADD', ukey(app, user, 'pa'), cref)
if (was == nil or was == 1) and quiet == 0 then return 1 end
if was == 0 and quiet == 1 then return -1 end
return 0
