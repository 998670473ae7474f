-- Removes a user's session claim if it is still this one. KEYS[1]: the claim key.
-- ARGV: P, claim ("<len>:<node><session id>"), node id. Returns 1 when another node
-- claims the user now, else 0 (removed, absent, or another session of this node).
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[2] then
  redis.call('DEL', KEYS[1])
  return 0
end
if cur then
  local cur_node = split_len(cur)
  if cur_node ~= ARGV[3] then return 1 end
end
return 0
