-- This node is alive: its heartbeat at Redis time in the ZSET P nodes. ARGV: P, node id.
redis.call('ZADD', P .. 'nodes', now_ms(), ARGV[2])
return 1
