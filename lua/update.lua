-- update: replace a live session's data blob and/or its claims in place; never recreates a
-- gone session.
-- KEYS[1] index ZSET, KEYS[2] session HASH
-- ARGV[1] session id, ARGV[2] the new claims (a msgpack map; '': kept), ARGV[3] meta chunk
-- size, ARGV[4] how many data chunks follow (-1: the data is kept), ARGV[5..] data chunks in
-- order (DATA .. 0, DATA .. 1, ...)
-- Reply: REVOKED when revoked or missing, EXPIRED when expired, else the fields after the
-- update (HGETALL).
local index, key, sid, claims = KEYS[1], KEYS[2], ARGV[1], ARGV[2]
local size, chunks = tonumber(ARGV[3]), tonumber(ARGV[4])
if not size or size < 1 or not chunks or chunks < -1 or (chunks >= 0 and #ARGV ~= 4 + chunks)
    or (chunks < 0 and claims == '') then
  return redis.error_reply('ERR sessionstore: bad update arguments')
end
local live, why = live_now(index, key, sid)
if not live then return why end
if claims ~= '' and not set_claims(key, claims, size) then
  return redis.error_reply('ERR sessionstore: unreadable session meta')
end
if chunks >= 0 then
  local old = tonumber(redis.call('HGET', key, DATA_CHUNKS) or '0')
  for n = chunks, old - 1 do
    redis.call('HDEL', key, DATA .. n)
  end
  for n = 1, chunks do
    redis.call('HSET', key, DATA .. (n - 1), ARGV[4 + n])
  end
  redis.call('HSET', key, DATA_CHUNKS, chunks)
end
return redis.call('HGETALL', key)
