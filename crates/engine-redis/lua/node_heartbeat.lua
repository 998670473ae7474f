-- This node is alive: its heartbeat at Redis time in the ZSET P nodes. ARGV: P, node id.
-- Returns 1 when the node was not in the ZSET (its first beat, or its entry is gone:
-- Redis lost its data or another node took it for dead and removed its members).
return redis.call('ZADD', P .. 'nodes', now_ms(), ARGV[2])
