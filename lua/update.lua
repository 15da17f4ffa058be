-- update: replace a live session's data blob in place; never recreates a gone session.
-- KEYS[1] index ZSET, KEYS[2] session HASH
-- ARGV[1] session id, ARGV[2..] data chunks in order (DATA .. 0, DATA .. 1, ...)
-- Reply: REVOKED when revoked or missing, EXPIRED when expired, else the fields after the
-- update (HGETALL).
local index, key, sid = KEYS[1], KEYS[2], ARGV[1]
local now = now_ms()
local live, why = load_live(index, key, sid, now)
if not live then
  return why
end
local old = tonumber(redis.call('HGET', key, DATA_CHUNKS) or '0')
for n = #ARGV - 1, old - 1 do
  redis.call('HDEL', key, DATA .. n)
end
for n = 2, #ARGV do
  redis.call('HSET', key, DATA .. (n - 2), ARGV[n])
end
redis.call('HSET', key, DATA_CHUNKS, #ARGV - 1)
return redis.call('HGETALL', key)
