-- Presence state change. KEYS[1] channel base. ARGV: P, user, mode ('set' | 'remove'),
-- json (set: object of items; remove: array of keys, empty = all), max_keys.
-- Returns {'none'}, {'limit'} or {'ok', state json}.
local pm = KEYS[1] .. ':pm'
local user = ARGV[2]
local rec = redis.call('HGET', pm, user)
if not rec then return {'none'} end
local r = cjson.decode(rec)
local arg = cjson.decode(ARGV[4])
if ARGV[3] == 'set' then
  local n, added = 0, 0
  for _ in pairs(r.s) do n = n + 1 end
  for k in pairs(arg) do if r.s[k] == nil then added = added + 1 end end
  if n + added > tonumber(ARGV[5]) then return {'limit'} end
  for k, v in pairs(arg) do r.s[k] = v end
else
  if #arg == 0 then
    r.s = {}
  else
    for _, k in ipairs(arg) do r.s[k] = nil end
  end
end
local out = cjson.encode(r)
redis.call('HSET', pm, user, out)
return {'ok', out}
