-- One page of visible members after ARGV[2] ('' = from the start), at most ARGV[3] + 1
-- (the extra one tells whether more remain). KEYS[1] channel base.
-- Returns {user, record json, user, record json, ...}.
local base = KEYS[1]
local from = '-'
if ARGV[2] ~= '' then from = '(' .. ARGV[2] end
local users = redis.call('ZRANGEBYLEX', base .. ':pv', from, '+', 'LIMIT', 0, tonumber(ARGV[3]) + 1)
local out = {}
for _, u in ipairs(users) do
  local rec = redis.call('HGET', base .. ':pm', u)
  if rec then
    out[#out + 1] = u
    out[#out + 1] = rec
  end
end
return out
