-- History page: members with lower <= ts <= start, newest first, at most limit + 1
-- (the extra one tells whether an older message remains in the range).
-- KEYS[1] channel base. ARGV: P, start ('+inf' for none), end (0 = none), limit, max_age_ms.
local h = KEYS[1] .. ':h'
local lower = math.max(tonumber(ARGV[3]), now_ms() - tonumber(ARGV[5]))
if ARGV[2] ~= '+inf' and tonumber(ARGV[2]) < lower then return {} end
return redis.call('ZRANGE', h, ARGV[2], num(lower), 'BYSCORE', 'REV', 'LIMIT', 0, tonumber(ARGV[4]) + 1)
