-- Metadata write: the lock gate, the major revision guard and every item guard are
-- checked, then every item is applied with the next major revision; all in this one
-- script. KEYS[1] object base (the lock gate reads the locks under the same tag).
-- ARGV: P, op (set|update|remove), major guard, gate lock ('' = none), gate user,
-- timestamp ('' = none), author, n, then n × (key, value, revision guard), then the
-- app's budget of bytes (keys and values) per object (0 = none).
-- Returns {'ok', major, key, item json, ...}, {'outdated', why}, {'locknotheld'} or
-- {'overbudget', bytes after the write}.
local base = KEYS[1]
local md, mj = base .. ':md', base .. ':mj'
local op = ARGV[2]
local guard = tonumber(ARGV[3])
if ARGV[4] ~= '' then
  local rec = redis.call('HGET', base .. ':lk', ARGV[4])
  if not rec or ARGV[5] == '' or cjson.decode(rec).o ~= ARGV[5] then return {'locknotheld'} end
end
local major = tonumber(redis.call('GET', mj) or '-1')
local exists = redis.call('HLEN', md) > 0
if guard ~= -1 then
  if guard == 0 and op == 'set' then
    if exists then return {'outdated', 'majorRevision 0: the metadata already exists (R139)'} end
  elseif not (guard == major and guard > 0) then
    return {'outdated', 'majorRevision ' .. ARGV[3] .. ' does not match the current ' .. num(major) .. ' (R139)'}
  end
end
local n = tonumber(ARGV[8])
for i = 0, n - 1 do
  local key, rev = ARGV[9 + 3 * i], tonumber(ARGV[11 + 3 * i])
  local cur = redis.call('HGET', md, key)
  if rev == -1 then
    if not cur and op == 'update' then
      return {'outdated', 'key ' .. cjson.encode(key) .. ' does not exist (R136)'}
    end
  elseif rev == 0 then
    if cur then return {'outdated', 'revision 0: key ' .. cjson.encode(key) .. ' already exists (R138)'} end
    if op ~= 'set' then
      return {'outdated', 'revision 0 of key ' .. cjson.encode(key) .. ' does not match the current absent key (R138)'}
    end
  else
    local have = 'absent key'
    if cur then have = cjson.decode(cur).r end
    if have ~= num(rev) then
      return {'outdated', 'revision ' .. ARGV[11 + 3 * i] .. ' of key ' .. cjson.encode(key) .. ' does not match the current ' .. have .. ' (R138)'}
    end
  end
end
local budget = tonumber(ARGV[9 + 3 * n] or '0') or 0
if budget > 0 and op ~= 'remove' then
  -- A write that would grow the object past the budget is refused; one that shrinks
  -- it (or keeps its size) always goes. A key listed twice counts once.
  local held, before = {}, 0
  local all = redis.call('HGETALL', md)
  for i = 1, #all, 2 do
    held[all[i]] = #all[i] + #cjson.decode(all[i + 1]).v
    before = before + held[all[i]]
  end
  local written = {}
  for i = 0, n - 1 do written[ARGV[9 + 3 * i]] = ARGV[10 + 3 * i] end
  local after = before
  for k, v in pairs(written) do after = after - (held[k] or 0) + #k + #v end
  if after > before and after > budget then return {'overbudget', after} end
end
local next_major = math.max(major, 0) + 1
redis.call('SET', mj, num(next_major))
local ts = ARGV[6]
if ts == '' then ts = '0' end
if op == 'remove' then
  if n == 0 then
    redis.call('DEL', md)
  else
    for i = 0, n - 1 do redis.call('HDEL', md, ARGV[9 + 3 * i]) end
  end
else
  for i = 0, n - 1 do
    local item = cjson.encode({v = ARGV[10 + 3 * i], r = num(next_major), t = ts, a = ARGV[7]})
    redis.call('HSET', md, ARGV[9 + 3 * i], item)
  end
end
local out = {'ok', next_major}
local all = redis.call('HGETALL', md)
for i = 1, #all do out[#out + 1] = all[i] end
return out
