-- Publications after (epoch, offset), at most limit, and whether nothing is missing.
-- KEYS[1] channel base. ARGV: P, meta_ttl_ms, since epoch, since offset, limit, max_age_ms.
-- Returns {epoch, offset, complete (0/1), entry...}.
local base = KEYS[1]
local meta = base .. ':m'
local epoch = redis.call('HGET', meta, 'e')
if not epoch then
  local t = redis.call('TIME')
  epoch = num(tonumber(t[1]) * 1000000 + tonumber(t[2]))
  redis.call('HSET', meta, 'e', epoch)
  redis.call('PEXPIRE', meta, tonumber(ARGV[2]))
end
local off = tonumber(redis.call('HGET', meta, 'o') or '0')
if epoch ~= ARGV[3] then return {epoch, off, 0} end
local log = base .. ':l'
local now = now_ms()
local max_age = tonumber(ARGV[6])
for _ = 1, 1000 do
  local head = redis.call('LINDEX', log, 0)
  if not head then break end
  local c1 = string.find(head, ',', 1, true)
  local c2 = string.find(head, ',', c1 + 1, true)
  if tonumber(string.sub(head, c1 + 1, c2 - 1)) >= now - max_age then break end
  redis.call('LPOP', log)
end
local since = tonumber(ARGV[4])
local len = redis.call('LLEN', log)
local first = off - len + 1
local complete = 0
if since >= off or first <= since + 1 then complete = 1 end
local out = {epoch, off, complete}
local limit = tonumber(ARGV[5])
if since < off and limit > 0 then
  local start = math.max(0, since + 1 - first)
  local entries = redis.call('LRANGE', log, start, start + limit - 1)
  for i = 1, #entries do out[#out + 1] = entries[i] end
end
return out
