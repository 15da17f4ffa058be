-- check: read one live session, sliding its idle deadline when its touch interval has elapsed:
-- touch_interval, or half the session's own idle ttl when that is shorter (a per-login idle
-- ttl included), so a session in continuous use never dies of idleness.
-- Serves get (interval -1: never touch), touch (interval 0) and validate.
-- KEYS[1] index ZSET, KEYS[2] session HASH
-- ARGV[1] session id, ARGV[2] touch interval ms (-1 never)
-- Reply: REVOKED when revoked or missing, EXPIRED when expired (nothing written but cleanup),
--        else the session's fields as HGETALL gives them; when a due touch was refused
--        (memory full under noeviction), nothing is written and UNTOUCHED, the
--        server's error follow them: a read is answered even when a touch cannot be.
local index, key, sid = KEYS[1], KEYS[2], ARGV[1]
local interval = tonumber(ARGV[2])
if not interval then
  return redis.error_reply('ERR sessionstore: bad touch interval')
end
local now, now_us = clock()
local live, why = load_live(index, key, sid, now)
if not live then
  return why
end
if interval >= 0 and now_us - live.s >= math.min(interval, math.floor(live.i / 2)) * 1000 then
  local refused = slide(index, key, sid, live, now, now_us, redis.pcall)
  if refused then
    local fields = redis.call('HGETALL', key)
    fields[#fields + 1] = UNTOUCHED
    fields[#fields + 1] = refused
    return fields
  end
end
return redis.call('HGETALL', key)
