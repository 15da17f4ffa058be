-- update: replace a live session's data blob in place; never recreates a gone session.
-- KEYS[1] index ZSET, KEYS[2] session HASH
-- ARGV[1] session id, ARGV[2..] data chunks in order (d0, d1, ...)
-- Reply: 0 when revoked or missing, -1 when expired, else the fields after the update (HGETALL).
local index, key, sid = KEYS[1], KEYS[2], ARGV[1]
local now = now_ms()
local live, why = load_live(index, key, sid, now)
if not live then
  return why
end
local old = tonumber(redis.call('HGET', key, 'dn') or '0')
for n = #ARGV - 1, old - 1 do
  redis.call('HDEL', key, 'd' .. n)
end
for n = 2, #ARGV do
  redis.call('HSET', key, 'd' .. (n - 2), ARGV[n])
end
redis.call('HSET', key, 'dn', #ARGV - 1)
return redis.call('HGETALL', key)
