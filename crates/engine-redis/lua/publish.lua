-- Broker publish: idempotency, receiver check, shared rate limit, next offset under the
-- channel's epoch, recovery log append (trim by count and age), PUBLISH. All or nothing.
-- KEYS[1] channel base. ARGV: P, body, max_count, max_age_ms, meta_ttl_ms, idem key
-- ('' = none), rate per second (0 = none), burst, require receiver (0/1), pub/sub name.
local base = KEYS[1]
local meta = base .. ':m'
local now = now_ms()
local max_age = tonumber(ARGV[4])
local idem = ARGV[6]
if idem ~= '' then
  local seen = redis.call('GET', base .. ':i:' .. idem)
  if seen then return {'dup', seen} end
end
if ARGV[9] == '1' then
  local n = redis.call('PUBSUB', 'NUMSUB', ARGV[10])[2]
  if n == 0 then return {'noreceiver'} end
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
local epoch = redis.call('HGET', meta, 'e')
if not epoch then
  local t = redis.call('TIME')
  epoch = num(tonumber(t[1]) * 1000000 + tonumber(t[2]))
  redis.call('HSET', meta, 'e', epoch)
end
local off = redis.call('HINCRBY', meta, 'o', 1)
redis.call('PEXPIRE', meta, tonumber(ARGV[5]))
local entry = num(off) .. ',' .. num(now) .. ',' .. ARGV[2]
local log = base .. ':l'
redis.call('RPUSH', log, entry)
redis.call('LTRIM', log, -tonumber(ARGV[3]), -1)
for _ = 1, 1000 do
  local head = redis.call('LINDEX', log, 0)
  if not head then break end
  local c1 = string.find(head, ',', 1, true)
  local c2 = string.find(head, ',', c1 + 1, true)
  if tonumber(string.sub(head, c1 + 1, c2 - 1)) >= now - max_age then break end
  redis.call('LPOP', log)
end
redis.call('PEXPIRE', log, max_age + 1000)
if idem ~= '' then
  redis.call('SET', base .. ':i:' .. idem, epoch .. ':' .. num(off), 'PX', math.max(max_age, 1))
end
redis.call('PUBLISH', ARGV[10], epoch .. ',' .. entry)
return {'ok', epoch, off}
