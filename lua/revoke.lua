-- revoke: delete one session and its index entry.
-- KEYS[1] index ZSET, KEYS[2] session HASH
-- ARGV[1] session id
-- Reply: 1 when a live session was deleted, else 0.
local index, key, sid = KEYS[1], KEYS[2], ARGV[1]
local existed = redis.call('DEL', key)
redis.call('ZREM', index, sid)
bump_index_ttl(index)
if existed == 1 then
  announce(index, {sid})
end
return existed
