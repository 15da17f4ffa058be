-- marker: the store's liveness marker; its disappearance means the data set was lost.
-- KEYS[1] marker STRING
-- ARGV[1] value to set when it is missing, ARGV[2] ttl ms
-- Reply: {0, value} when it was missing (now set), {1, value} when it exists (ttl renewed).
local key, candidate, ttl = KEYS[1], ARGV[1], tonumber(ARGV[2])
if not ttl or ttl < 1 then
  return redis.error_reply('ERR sessionstore: bad marker ttl')
end
local value = redis.call('GET', key)
if not value then
  redis.call('SET', key, candidate, 'PX', ttl)
  return {0, candidate}
end
redis.call('PEXPIRE', key, ttl)
return {1, value}
