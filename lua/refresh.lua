-- refresh: rotate a session's refresh generation, or detect reuse of an older one.
-- KEYS[1] index ZSET, KEYS[2] session HASH, KEYS[3] the user's history LIST (history on)
-- ARGV[1] session id, ARGV[2] presented generation, ARGV[3] grace ms, ARGV[4] key id to sign
-- with, ARGV[5] the history's spec ('' off); a rotation and a reuse are recorded there
-- Reply: {REVOKED} revoked or missing; {EXPIRED} expired; {REUSED} reuse detected (session
--        deleted); {NO_REFRESH} session has no refresh token; {ROTATED, generation, key id,
--        fields...} rotated; {GRACE, generation, key id, fields...} grace retry (the current
--        generation, so a retrying client and the racer that rotated first agree).
local index, key, sid = KEYS[1], KEYS[2], ARGV[1]
local presented, grace, kid = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local history, spec = KEYS[3], history_spec(ARGV[5])
if not presented or not grace or grace < 0 or kid == '' or (spec and not history) then
  return redis.error_reply('ERR sessionstore: bad refresh arguments')
end
local now, now_us = clock()
local live, why = load_live(index, key, sid, now)
if not live then
  return {why}
end
local r = redis.call('HMGET', key, GENERATION, KEY_ID, ROTATED_AT)
local current = tonumber(r[1])
if not current then
  return {NO_REFRESH}
end
if presented == current then
  slide(index, key, sid, live, now, now_us)
  redis.call('HSET', key, GENERATION, current + 1, KEY_ID, kid, ROTATED_AT, now)
  history_add(history, spec, {{H_REFRESH, session_ref(sid)}})
  local reply = {ROTATED, current + 1, kid}
  for _, v in ipairs(redis.call('HGETALL', key)) do reply[#reply + 1] = v end
  return reply
end
if presented == current - 1 and now - tonumber(r[3] or '0') <= grace then
  local reply = {GRACE, current, r[2]}
  for _, v in ipairs(redis.call('HGETALL', key)) do reply[#reply + 1] = v end
  return reply
end
forget(index, key, sid)
bump_index_ttl(index)
announce(index, {sid})
history_add(history, spec, {{H_REUSE, session_ref(sid)}, revoked_entry(sid, WHY_REUSE)})
return {REUSED}
