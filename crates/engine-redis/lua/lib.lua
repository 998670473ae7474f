-- Shared prelude, prepended to every script at compile time (see src/scripts.rs).
-- ARGV[1] is always the engine's key prefix. A channel is named by its "cref":
-- <len(app)>:<app><kind digit><name>; its keys share the hash tag P{cref}.
local P = ARGV[1]
local function tag(cref) return P .. '{' .. cref .. '}' end
local function num(x) return string.format('%.0f', x) end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- Splits "<len>:<head><rest>" into head and rest.
local function split_len(s)
  local i = string.find(s, ':', 1, true)
  local n = tonumber(string.sub(s, 1, i - 1))
  return string.sub(s, i + 1, i + n), string.sub(s, i + n + 1)
end
-- The app of a cref.
local function cref_app(cref)
  local app = split_len(cref)
  return app
end
-- Per-user keys of app: P u{<len>:<app><user>}:suffix
local function ukey(app, user, suffix) return P .. 'u{' .. #app .. ':' .. app .. user .. '}:' .. suffix end
-- A lock reference: <len(cref)>:<cref><lock>.
local function lref(cref, lock) return #cref .. ':' .. cref .. lock end
-- The SET of memberships a node entered (for removing a dead node's members), and its
-- member reference <len(cref)>:<cref><user>.
local function nkey(node) return P .. 'node{' .. node .. '}:m' end
local function mref(cref, user) return #cref .. ':' .. cref .. user end
-- Per-app keys (budgets): P a{<len>:<app>}:suffix
local function akey(app, suffix) return P .. 'a{' .. #app .. ':' .. app .. '}:' .. suffix end
-- The bytes a recovery log entry "<offset>,<ms>,<body>" counts against the app's
-- budget: what the publisher chose (publisher, custom type, topic, payload), that is
-- the body less its 29 bytes of kind, timestamps and string lengths (src/keys.rs).
local function entry_bytes(entry)
  local c1 = string.find(entry, ',', 1, true)
  local c2 = string.find(entry, ',', c1 + 1, true)
  return math.max(0, #entry - c2 - 29)
end
