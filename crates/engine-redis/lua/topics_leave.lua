-- Topic leave. KEYS[1] channel base. ARGV: P, user, field ('' = every topic of user).
-- Returns the topics left.
local tp, tc = KEYS[1] .. ':tp', KEYS[1] .. ':tc'
local user = ARGV[2]
local fields = {}
if ARGV[3] ~= '' then
  fields = {ARGV[3]}
else
  for _, f in ipairs(redis.call('HKEYS', tp)) do
    local _, u = split_len(f)
    if u == user then fields[#fields + 1] = f end
  end
end
local out = {}
for _, f in ipairs(fields) do
  if redis.call('HDEL', tp, f) == 1 then
    local topic = split_len(f)
    out[#out + 1] = topic
    if redis.call('HINCRBY', tc, user, -1) <= 0 then redis.call('HDEL', tc, user) end
  end
end
return out
