-- Every lock operation, one script (one atomic step each). A lock is a field of the
-- channel's HASH P{cref}:lk, value json {t = ttl, o = owner or '', d = deadline or ''};
-- its waiters are the LIST P{cref}:lw:<lock>; deadlines of lost owners are the ZSET
-- P pldue (member lref); each user has a SET of locks owned (lo) and waited for (lq).
-- Every free is PUBLISHed on P locks:handover as
-- <len>:<cref><len>:<lock><len>:<former><next> (next '' when nobody waited), so the
-- node that holds a waiting request answers it and every node knows which owners it
-- recorded are gone (src/local_locks.rs); a removal as -<len>:<cref><lock>.
-- ARGV: P, operation, then the operation's arguments (see each branch).
local op = ARGV[2]
local function lk(cref) return tag(cref) .. ':lk' end
local function lw(cref, lock) return tag(cref) .. ':lw:' .. lock end
local due = P .. 'ldue'
local function get(cref, lock)
  local rec = redis.call('HGET', lk(cref), lock)
  if rec then return cjson.decode(rec) end
  return nil
end
local function put(cref, lock, r) redis.call('HSET', lk(cref), lock, cjson.encode(r)) end
-- Frees a lock: hands it to the first waiter. Returns {cref, lock, ttl, former, next}.
local function free(cref, lock, r)
  local app = cref_app(cref)
  local ref = lref(cref, lock)
  local former = r.o
  if former ~= '' then redis.call('SREM', ukey(app, former, 'lo'), ref) end
  redis.call('ZREM', due, ref)
  local nxt = redis.call('LPOP', lw(cref, lock))
  if nxt then
    redis.call('SREM', ukey(app, nxt, 'lq'), ref)
    redis.call('SADD', ukey(app, nxt, 'lo'), ref)
  else
    nxt = ''
  end
  -- Every node hears of it; the one holding the waiting request answers.
  redis.call('PUBLISH', P .. 'locks:handover',
    #cref .. ':' .. cref .. #lock .. ':' .. lock .. #former .. ':' .. former .. nxt)
  r.o = nxt
  r.d = ''
  put(cref, lock, r)
  return {cref, lock, r.t, former, nxt}
end
local function flat(out, f) for i = 1, #f do out[#out + 1] = f[i] end end

if op == 'set' then -- cref, lock, ttl, max, the app's budget of definitions (0 = none)
  local cref, lock = ARGV[3], ARGV[4]
  if redis.call('HEXISTS', lk(cref), lock) == 1 then return {'exists'} end
  if redis.call('HLEN', lk(cref)) >= tonumber(ARGV[6]) then return {'toomany'} end
  local ld = akey(cref_app(cref), 'ld')
  local budget = tonumber(ARGV[7] or '0') or 0
  local count = tonumber(redis.call('GET', ld) or '0')
  if budget > 0 and count >= budget then return {'overbudget', count} end
  redis.call('INCR', ld)
  put(cref, lock, {t = tonumber(ARGV[5]), o = '', d = ''})
  return {'ok'}
elseif op == 'remove' then -- cref, lock
  local cref, lock = ARGV[3], ARGV[4]
  local r = get(cref, lock)
  if not r then return {'notdefined'} end
  local app, ref = cref_app(cref), lref(cref, lock)
  redis.call('HDEL', lk(cref), lock)
  if redis.call('DECR', akey(app, 'ld')) < 0 then redis.call('SET', akey(app, 'ld'), 0) end
  for _, w in ipairs(redis.call('LRANGE', lw(cref, lock), 0, -1)) do
    redis.call('SREM', ukey(app, w, 'lq'), ref)
  end
  redis.call('DEL', lw(cref, lock))
  if r.o ~= '' then redis.call('SREM', ukey(app, r.o, 'lo'), ref) end
  redis.call('ZREM', due, ref)
  redis.call('PUBLISH', P .. 'locks:handover', '-' .. #cref .. ':' .. cref .. lock)
  return {'ok', cref, lock, r.t, r.o, ''}
elseif op == 'acquire' then -- cref, lock, user, wait (0/1)
  local cref, lock, user = ARGV[3], ARGV[4], ARGV[5]
  local r = get(cref, lock)
  if not r then return {'notdefined'} end
  local app, ref = cref_app(cref), lref(cref, lock)
  if r.o == '' then
    r.o = user
    r.d = ''
    put(cref, lock, r)
    if redis.call('LREM', lw(cref, lock), 0, user) > 0 then
      redis.call('SREM', ukey(app, user, 'lq'), ref)
    end
    redis.call('SADD', ukey(app, user, 'lo'), ref)
    return {'acquired', r.t}
  elseif r.o == user then
    return {'already'}
  elseif ARGV[6] == '1' then
    if not redis.call('LPOS', lw(cref, lock), user) then
      redis.call('RPUSH', lw(cref, lock), user)
      redis.call('SADD', ukey(app, user, 'lq'), ref)
    end
    return {'queued', r.t}
  else
    return {'held', r.o}
  end
elseif op == 'release' then -- cref, lock, owner
  local cref, lock, user = ARGV[3], ARGV[4], ARGV[5]
  local r = get(cref, lock)
  if not r then return {'notdefined'} end
  if r.o ~= user then return {'notowner'} end
  local out = {'ok'}
  flat(out, free(cref, lock, r))
  return out
elseif op == 'cancel' then -- cref, lock, user
  local cref, lock, user = ARGV[3], ARGV[4], ARGV[5]
  if redis.call('LREM', lw(cref, lock), 0, user) > 0 then
    redis.call('SREM', ukey(cref_app(cref), user, 'lq'), lref(cref, lock))
    return 1
  end
  return 0
elseif op == 'lost' or op == 'back' then -- app, user, now_ms
  local app, user = ARGV[3], ARGV[4]
  local lo = ukey(app, user, 'lo')
  for _, ref in ipairs(redis.call('SMEMBERS', lo)) do
    local cref, lock = split_len(ref)
    local r = get(cref, lock)
    if r and r.o == user then
      if op == 'lost' then
        local d = tonumber(ARGV[5]) + r.t * 1000
        r.d = num(d)
        redis.call('ZADD', due, d, ref)
      else
        r.d = ''
        redis.call('ZREM', due, ref)
      end
      put(cref, lock, r)
    else
      redis.call('SREM', lo, ref)
    end
  end
  return {'ok'}
elseif op == 'expire_due' or op == 'due' then -- now_ms
  local out = {'ok'}
  for _, ref in ipairs(redis.call('ZRANGEBYSCORE', due, '-inf', ARGV[3])) do
    local cref, lock = split_len(ref)
    local r = get(cref, lock)
    if r and r.o ~= '' and r.d ~= '' and tonumber(r.d) <= tonumber(ARGV[3]) then
      if op == 'due' then
        flat(out, {cref, lock, r.o})
      else
        flat(out, free(cref, lock, r))
      end
    else
      redis.call('ZREM', due, ref)
    end
  end
  return out
elseif op == 'expire' then -- cref, lock, owner, now_ms
  local cref, lock, owner = ARGV[3], ARGV[4], ARGV[5]
  local r = get(cref, lock)
  if not r or r.o ~= owner or r.d == '' or tonumber(r.d) > tonumber(ARGV[6]) then return {'none'} end
  local out = {'ok'}
  flat(out, free(cref, lock, r))
  return out
elseif op == 'release_all' or op == 'owned' then -- app, user
  local app, user = ARGV[3], ARGV[4]
  local out = {'ok'}
  if op == 'release_all' then
    local lq = ukey(app, user, 'lq')
    for _, ref in ipairs(redis.call('SMEMBERS', lq)) do
      local cref, lock = split_len(ref)
      redis.call('LREM', lw(cref, lock), 0, user)
    end
    redis.call('DEL', lq)
  end
  local lo = ukey(app, user, 'lo')
  for _, ref in ipairs(redis.call('SMEMBERS', lo)) do
    local cref, lock = split_len(ref)
    local r = get(cref, lock)
    if r and r.o == user then
      if op == 'owned' then
        flat(out, {cref, lock})
      else
        flat(out, free(cref, lock, r))
      end
    else
      redis.call('SREM', lo, ref)
    end
  end
  return out
elseif op == 'restore' then -- cref, lock, ttl, owner, deadline ('' = none), waiter
  -- Written again by the node that made them, after Redis lost them: the definition
  -- (when gone), then either an owner (unless another user owns it by now) or a
  -- waiter (who gets the lock if it is free, with the hand-over notice, else a place
  -- at the end of the line).
  local cref, lock, owner, deadline, waiter = ARGV[3], ARGV[4], ARGV[6], ARGV[7], ARGV[8]
  local app, ref = cref_app(cref), lref(cref, lock)
  local r = get(cref, lock)
  if not r then
    r = {t = tonumber(ARGV[5]), o = '', d = ''}
    redis.call('INCR', akey(app, 'ld'))
    put(cref, lock, r)
  end
  if owner ~= '' then
    if r.o == owner then return {'already'} end
    if r.o ~= '' then return {'taken', r.o} end
    r.o = owner
    r.d = deadline
    put(cref, lock, r)
    if redis.call('LREM', lw(cref, lock), 0, owner) > 0 then
      redis.call('SREM', ukey(app, owner, 'lq'), ref)
    end
    redis.call('SADD', ukey(app, owner, 'lo'), ref)
    if deadline ~= '' then redis.call('ZADD', due, tonumber(deadline), ref) end
    return {'owner'}
  end
  if r.o == waiter then return {'already'} end
  if r.o == '' then
    r.o = waiter
    r.d = ''
    put(cref, lock, r)
    if redis.call('LREM', lw(cref, lock), 0, waiter) > 0 then
      redis.call('SREM', ukey(app, waiter, 'lq'), ref)
    end
    redis.call('SADD', ukey(app, waiter, 'lo'), ref)
    redis.call('PUBLISH', P .. 'locks:handover', #cref .. ':' .. cref .. #lock .. ':' .. lock .. '0:' .. waiter)
    return {'acquired'}
  end
  if not redis.call('LPOS', lw(cref, lock), waiter) then
    redis.call('RPUSH', lw(cref, lock), waiter)
    redis.call('SADD', ukey(app, waiter, 'lq'), ref)
  end
  return {'queued'}
end
return redis.error_reply('unknown lock operation ' .. op)
