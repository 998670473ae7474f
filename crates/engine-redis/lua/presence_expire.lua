-- Removes the memberships of the users whose deadline is at or before ARGV[2] (those
-- entered by the node that set the deadline); one
-- script, so that of several nodes sweeping at once exactly one removes each member.
-- Also removes the members entered by nodes whose heartbeat (ZSET P nodes, Redis time)
-- is older than the node timeout: the members of a node that died; their users' locks
-- then count as lost at now_ms (expiring after their ttl, as with Locks::owner_lost).
-- ARGV: P, now_ms, max users, node timeout ms.
-- Returns {users swept, cref, user, record json, ...}.
local due = P .. 'pdue'
local users = redis.call('ZRANGEBYSCORE', due, '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {#users}
for _, entry in ipairs(users) do
  redis.call('ZREM', due, entry)
  -- A deadline is set by one node (<len>:<node><len>:<app><user>) and applies to the
  -- memberships that node entered: a member that moved to another node keeps its own.
  local owner, au = split_len(entry)
  local app, user = split_len(au)
  local pa = ukey(app, user, 'pa')
  for _, cref in ipairs(redis.call('SMEMBERS', pa)) do
    local base = tag(cref)
    local rec = redis.call('HGET', base .. ':pm', user)
    if not rec then
      redis.call('SREM', pa, cref)
    else
      local r = cjson.decode(rec)
      if not r.n or r.n == owner then
        if r.n then redis.call('SREM', nkey(r.n), mref(cref, user)) end
        redis.call('HDEL', base .. ':pm', user)
        redis.call('ZREM', base .. ':pv', user)
        redis.call('ZREM', ukey(app, user, 'pw'), cref)
        redis.call('SREM', pa, cref)
        out[#out + 1] = cref
        out[#out + 1] = user
        out[#out + 1] = rec
      end
    end
  end
end
local nodes = P .. 'nodes'
local lost = {}
for _, node in ipairs(redis.call('ZRANGEBYSCORE', nodes, '-inf', '(' .. num(now_ms() - tonumber(ARGV[4])))) do
  local nk = nkey(node)
  for _, ref in ipairs(redis.call('SMEMBERS', nk)) do
    local cref, user = split_len(ref)
    local base = tag(cref)
    local rec = redis.call('HGET', base .. ':pm', user)
    if rec and cjson.decode(rec).n == node then
      local app = cref_app(cref)
      redis.call('HDEL', base .. ':pm', user)
      redis.call('ZREM', base .. ':pv', user)
      redis.call('ZREM', ukey(app, user, 'pw'), cref)
      redis.call('SREM', ukey(app, user, 'pa'), cref)
      lost[#app .. ':' .. app .. user] = true
      out[#out + 1] = cref
      out[#out + 1] = user
      out[#out + 1] = rec
    end
  end
  redis.call('DEL', nk)
  redis.call('ZREM', nodes, node)
end
local now = tonumber(ARGV[2])
for au in pairs(lost) do
  local app, user = split_len(au)
  for _, ref in ipairs(redis.call('SMEMBERS', ukey(app, user, 'lo'))) do
    local cref, lock = split_len(ref)
    local rec = redis.call('HGET', tag(cref) .. ':lk', lock)
    if rec then
      local r = cjson.decode(rec)
      if r.o == user and r.d == '' then
        local d = now + r.t * 1000
        r.d = num(d)
        redis.call('HSET', tag(cref) .. ':lk', lock, cjson.encode(r))
        redis.call('ZADD', P .. 'ldue', d, ref)
      end
    end
  end
end
return out
