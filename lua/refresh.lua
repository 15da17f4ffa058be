-- refresh: rotate a session's refresh generation, or detect reuse of an older one.
-- A token of a rotated-away id (rotate.lua left its moved key) is reuse too, of its whole
-- family: the live session the family moved to is revoked (any generation, no grace: a
-- rotation is a privilege change, and whoever held the old id must not follow it).
-- KEYS[1] index ZSET, KEYS[2] session HASH, KEYS[3] the user's history LIST (history on).
-- The moved keys (<ns>:{<enc uid>}:mv:<sid>, same hash tag) are built here and read only
-- once the session is gone: declared, the one that almost never exists would make every
-- refresh fail with TRYAGAIN while a cluster migrates the user's slot.
-- ARGV[1] session id, ARGV[2] presented generation, ARGV[3] grace ms, ARGV[4] key id to sign
-- with, ARGV[5] the history's spec ('' off); a rotation and a reuse are recorded there
-- Reply: {REVOKED} revoked or missing; {EXPIRED} expired; {REUSED, session id} reuse
--        detected: that session deleted (this one, or the one its family moved to);
--        {NO_REFRESH} session has no refresh token; {ROTATED, generation, key id,
--        fields...} rotated; {GRACE, generation, key id, fields...} grace retry (the current
--        generation, so a retrying client and the racer that rotated first agree).
local index, key, sid = KEYS[1], KEYS[2], ARGV[1]
local presented, grace, kid = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local history, spec = KEYS[3], history_spec(ARGV[5])
if not presented or not grace or grace < 0 or kid == '' or (spec and not history) then
  return redis.error_reply('ERR sessionstore: bad refresh arguments')
end

-- Revoke a live session for reuse of a refresh token of its family.
local function reused(victim, victim_key)
  forget(index, victim_key, victim)
  bump_index_ttl(index)
  announce(index, {victim})
  history_add(history, spec, {{H_REUSE, session_ref(victim)}, revoked_entry(victim, WHY_REUSE)})
  return {REUSED, victim}
end

local now, now_us = clock()
local live, why = load_live(index, key, sid, now)
if not live then
  local target = moved_live(index, sid, now)
  if target then
    return reused(target, session_prefix(index) .. target)
  end
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
return reused(sid, key)
