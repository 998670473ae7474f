-- Presence exit: remove a member; returns its record json or nil.
-- KEYS[1] channel base. ARGV: P, app, cref, user.
local base, app, cref, user = KEYS[1], ARGV[2], ARGV[3], ARGV[4]
local pm = base .. ':pm'
local rec = redis.call('HGET', pm, user)
if not rec then return false end
local r = cjson.decode(rec)
if r.n then redis.call('SREM', nkey(r.n), mref(cref, user)) end
redis.call('HDEL', pm, user)
redis.call('ZREM', base .. ':pv', user)
redis.call('ZREM', ukey(app, user, 'pw'), cref)
redis.call('SREM', ukey(app, user, 'pa'), cref)
return rec
