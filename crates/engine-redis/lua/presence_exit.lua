-- Presence exit: remove a member; returns its record json or nil. A record entered by
-- another node is left alone (the member moved there: its session there owns it).
-- KEYS[1] channel base. ARGV: P, app, cref, user, node id.
local base, app, cref, user = KEYS[1], ARGV[2], ARGV[3], ARGV[4]
local pm = base .. ':pm'
local rec = redis.call('HGET', pm, user)
if not rec then return false end
local r = cjson.decode(rec)
if r.n and ARGV[5] and r.n ~= ARGV[5] then return false end
if r.n then redis.call('SREM', nkey(r.n), mref(cref, user)) end
redis.call('HDEL', pm, user)
redis.call('ZREM', base .. ':pv', user)
redis.call('ZREM', ukey(app, user, 'pw'), cref)
redis.call('SREM', ukey(app, user, 'pa'), cref)
return rec
