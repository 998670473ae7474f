-- Broker publish: idempotency, receiver check, shared rate limit, next offset under the
-- channel's epoch, recovery log append (trim by count and age), PUBLISH. All or nothing.
-- KEYS[1] channel base. ARGV: P, body, max_count, max_age_ms, meta_ttl_ms, idem key
-- ('' = none), rate per second (0 = none), burst, require receiver (0/1), pub/sub name,
-- then the app's budgets (0 = none): recovery-log bytes, idempotency keys, idle
-- positions; then whether the publication is a channel event (0/1); then the id of
-- the master the node writes through ('' = standalone; Sentinel: its master_replid).
-- Budgets are kept in per-app keys (P a{app}:…, see docs/scaling.md): lb HASH cref →
-- bytes of its log and '*' → the app's total, lx ZSET cref → when its whole log is past
-- max_age, ik ZSET idempotency key → expiry, pos ZSET cref → last publish.
local base = KEYS[1]
local meta = base .. ':m'
local now = now_ms()
local max_age = tonumber(ARGV[4])
local idem = ARGV[6]
local lb_budget, ik_budget, sp_budget = tonumber(ARGV[11]), tonumber(ARGV[12]), tonumber(ARGV[13])
local is_event = ARGV[14] == '1'
local cref = string.sub(base, #P + 2, -2)
local app = cref_app(cref)
local log = base .. ':l'
if idem ~= '' then
  local seen = redis.call('GET', base .. ':i:' .. idem)
  if seen then return {'dup', seen} end
  if ik_budget > 0 then
    local ik = akey(app, 'ik')
    redis.call('ZREMRANGEBYSCORE', ik, '-inf', now)
    if redis.call('ZCARD', ik) >= ik_budget then return {'overbudget', 'keys', ik_budget} end
  end
end
if ARGV[9] == '1' then
  local n = redis.call('PUBSUB', 'NUMSUB', ARGV[10])[2]
  if n == 0 then return {'noreceiver'} end
end
-- Recovery-log bytes of the app: this channel's share and the total.
local lb, lx = akey(app, 'lb'), akey(app, 'lx')
local function dropped(bytes)
  if lb_budget <= 0 or bytes <= 0 then return end
  local mine = tonumber(redis.call('HGET', lb, cref) or '0')
  local d = math.min(mine, bytes)
  if d > 0 then
    redis.call('HINCRBY', lb, cref, -d)
    redis.call('HINCRBY', lb, '*', -d)
  end
end
-- Trim by age (counting what goes).
local aged = 0
for _ = 1, 1000 do
  local head = redis.call('LINDEX', log, 0)
  if not head then break end
  local c1 = string.find(head, ',', 1, true)
  local c2 = string.find(head, ',', c1 + 1, true)
  if tonumber(string.sub(head, c1 + 1, c2 - 1)) >= now - max_age then break end
  redis.call('LPOP', log)
  aged = aged + entry_bytes(head)
end
dropped(aged)
local bytes = #ARGV[2] - 29
local logged = true
if lb_budget > 0 then
  -- Channels whose logs aged out wholly (and expired) give their bytes back.
  for _, c in ipairs(redis.call('ZRANGEBYSCORE', lx, '-inf', now, 'LIMIT', 0, 64)) do
    local b = tonumber(redis.call('HGET', lb, c) or '0')
    redis.call('HDEL', lb, c)
    redis.call('HINCRBY', lb, '*', -b)
    redis.call('ZREM', lx, c)
  end
  -- A log trimmed elsewhere (recover) or expired as a key holds nothing now.
  if redis.call('LLEN', log) == 0 then
    dropped(tonumber(redis.call('HGET', lb, cref) or '0'))
  end
  local total = tonumber(redis.call('HGET', lb, '*') or '0')
  local mine = tonumber(redis.call('HGET', lb, cref) or '0')
  logged = total - mine + bytes <= lb_budget
  -- Channel events are the server's own: past the budget they are delivered but not
  -- logged (a resume reports the gap) rather than refused.
  if not logged and not is_event then return {'overbudget', 'log', lb_budget} end
end
local rate = tonumber(ARGV[7])
if rate > 0 then
  local burst = math.max(tonumber(ARGV[8]), 1)
  local rk = base .. ':r'
  local r = redis.call('HMGET', rk, 't', 'ts')
  local tokens = tonumber(r[1]) or burst
  local ts = tonumber(r[2]) or now
  tokens = math.min(burst, tokens + math.max(0, now - ts) * rate / 1000)
  local ok = tokens >= 1
  if ok then tokens = tokens - 1 end
  redis.call('HSET', rk, 't', tostring(tokens), 'ts', num(now))
  redis.call('PEXPIRE', rk, 60000)
  if not ok then return {'limited'} end
end
if lb_budget > 0 then
  if logged then
    -- This channel drops its own oldest publications until this one fits.
    local total = tonumber(redis.call('HGET', lb, '*') or '0')
    local freed = 0
    while total - freed + bytes > lb_budget do
      local head = redis.call('LPOP', log)
      if not head then break end
      freed = freed + entry_bytes(head)
    end
    dropped(freed)
  else
    -- An unlogged event: the log is emptied so that it stays contiguous (recover
    -- reports the gap from the first offset it holds).
    dropped(tonumber(redis.call('HGET', lb, cref) or '0'))
    redis.call('DEL', log)
  end
end
local epoch = redis.call('HGET', meta, 'e')
local writer = ARGV[15] or ''
if epoch and writer ~= '' then
  local w = redis.call('HGET', meta, 'w')
  if w and w ~= writer then
    -- Last written through another master: after a Sentinel failover the promoted
    -- replica may lack that master's latest publications, whose offsets subscribers
    -- have seen; the channel starts a new epoch (subscribers report the gap) instead
    -- of giving those offsets to new publications.
    dropped(tonumber(redis.call('HGET', lb, cref) or '0'))
    redis.call('DEL', log)
    redis.call('HDEL', meta, 'o')
    epoch = nil
  end
end
if not epoch then
  local t = redis.call('TIME')
  epoch = num(tonumber(t[1]) * 1000000 + tonumber(t[2]))
  redis.call('HSET', meta, 'e', epoch)
end
if writer ~= '' then redis.call('HSET', meta, 'w', writer) end
local off = redis.call('HINCRBY', meta, 'o', 1)
redis.call('PEXPIRE', meta, tonumber(ARGV[5]))
local entry = num(off) .. ',' .. num(now) .. ',' .. ARGV[2]
if logged then
  redis.call('RPUSH', log, entry)
  local len = redis.call('LLEN', log)
  local max_count = tonumber(ARGV[3])
  if len > max_count then
    if lb_budget > 0 then
      local gone = 0
      for _, e in ipairs(redis.call('LRANGE', log, 0, len - max_count - 1)) do
        gone = gone + entry_bytes(e)
      end
      dropped(gone)
    end
    redis.call('LTRIM', log, -max_count, -1)
  end
  redis.call('PEXPIRE', log, max_age + 1000)
  if lb_budget > 0 then
    redis.call('HINCRBY', lb, cref, bytes)
    redis.call('HINCRBY', lb, '*', bytes)
    redis.call('ZADD', lx, now + max_age + 1000, cref)
  end
end
if idem ~= '' then
  redis.call('SET', base .. ':i:' .. idem, epoch .. ':' .. num(off), 'PX', math.max(max_age, 1))
  if ik_budget > 0 then
    redis.call('ZADD', akey(app, 'ik'), now + math.max(max_age, 1), #cref .. ':' .. cref .. idem)
  end
end
if sp_budget > 0 then
  -- Positions of idle channels (nothing published for max_age) past the budget are
  -- forgotten, oldest first: such a channel comes back with a new epoch (a gap).
  local pos = akey(app, 'pos')
  redis.call('ZADD', pos, now, cref)
  redis.call('ZREMRANGEBYSCORE', pos, '-inf', now - tonumber(ARGV[5]))
  local idle = redis.call('ZCOUNT', pos, '-inf', '(' .. num(now - max_age))
  for _ = 1, 16 do
    if idle <= sp_budget then break end
    local oldest = redis.call('ZPOPMIN', pos)
    if not oldest[1] then break end
    redis.call('DEL', tag(oldest[1]) .. ':m', tag(oldest[1]) .. ':l')
    idle = idle - 1
  end
end
redis.call('PUBLISH', ARGV[10], epoch .. ',' .. entry)
return {'ok', epoch, off}
