-- Claims a user's one session (R28) for a session on this node. KEYS[1]: the user's
-- claim key (ukey 'sess'). ARGV: P, app, user, node id, session id, the session id the
-- client asks to resume ('' for none).
-- The claim is "<len>:<node><session id>". Returns the former claim (or false); when it
-- named another node, that node hears "<len>:<app><len>:<user><former session id>" on
-- its control channel P ctl:<node> and ends the session, unless it is the session the
-- client resumes (the client moved: that session has lost its connection and times out).
local app, user, node, sid, resuming = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local old = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], #node .. ':' .. node .. sid)
if old then
  local old_node, old_sid = split_len(old)
  if old_node ~= node and old_sid ~= resuming then
    redis.call('PUBLISH', P .. 'ctl:' .. old_node, #app .. ':' .. app .. #user .. ':' .. user .. old_sid)
  end
end
return old
