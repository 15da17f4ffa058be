-- history: read a user's history, with the ids of its live sessions (to name the sessions
-- its entries refer to by their first chars).
-- KEYS[1] history LIST, KEYS[2] index ZSET
-- Reply: {{the history's elements, clock first}, {live session ids...}}
return {redis.call('LRANGE', KEYS[1], 0, -1), redis.call('ZRANGE', KEYS[2], 0, -1)}
