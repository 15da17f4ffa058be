-- rotate: move a live session to a new session id, and revoke the old one, in one step.
-- Everything stays (device, data, claims, auth facts, browser-session flag, creation time,
-- deadlines, TTL) but the refresh state: a kid starts generation 1 under the new id, none
-- leaves the new session without refresh tokens. The old id's index entry is replaced by
-- the new one and its revocation announced; never recreates a gone session.
-- A session that has had refresh tokens leaves moved keys behind, so that a refresh token
-- of an old id is reuse of the family (refresh.lua): the old id's moved key names the new
-- id on the family's first rotation, else the family's first id (ORIGIN), whose moved key
-- is rewritten to name the new id. Any old id is then at most two reads from the live one.
-- Each expires at the session's absolute deadline.
-- KEYS[1] index ZSET, KEYS[2] the session HASH, KEYS[3] the new session HASH (same hash tag),
-- KEYS[4] the old id's moved STRING, KEYS[5] the user's history LIST (history on)
-- ARGV[1] session id, ARGV[2] new session id, ARGV[3] key id to sign with ('': no refresh
-- state), ARGV[4] the new claims (a msgpack map; '': kept), ARGV[5] meta chunk size,
-- ARGV[6] the history's spec ('' off), ARGV[7] why (one char: the old id's revocation, as
-- the history records it)
-- Reply: REVOKED when revoked or missing, EXPIRED when expired (nothing written but
--        cleanup), else the new session's fields (HGETALL).
local index, key, new_key, moved = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local sid, new_sid, kid, claims = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local size = tonumber(ARGV[5])
local history, spec, reason = KEYS[5], history_spec(ARGV[6]), ARGV[7]
if not size or size < 1 or new_sid == '' or new_sid == sid or not moved
    or (spec and (not history or not reason or #reason ~= 1)) then
  return redis.error_reply('ERR sessionstore: bad rotate arguments')
end
local live, why = live_now(index, key, sid)
if not live then return why end
if redis.call('EXISTS', new_key) == 1 then
  return redis.error_reply('ERR sessionstore: session id collision')
end
local r = redis.call('HMGET', key, GENERATION, ORIGIN)
local origin = r[2] or (r[1] and sid)  -- nil: never had refresh tokens, nothing to follow
-- set_claims writes nothing when it fails: the first write is the one that may refuse.
if claims ~= '' and not set_claims(key, claims, size) then
  return redis.error_reply('ERR sessionstore: unreadable session meta')
end
-- RENAME keeps the hash and its TTL, and tells every tracking client the old key changed.
redis.call('RENAME', key, new_key)
redis.call('HDEL', new_key, GENERATION, KEY_ID, ROTATED_AT)
if kid ~= '' then
  redis.call('HSET', new_key, GENERATION, 1, KEY_ID, kid)
end
redis.call('ZREM', index, sid)
redis.call('ZADD', index, live.e, new_sid)
bump_index_ttl(index)
if origin then
  local first = moved_prefix(index) .. origin
  if origin == sid then
    redis.call('HSET', new_key, ORIGIN, sid)
  else
    redis.call('SET', moved, origin)
    redis.call('PEXPIREAT', moved, live.a)
  end
  redis.call('SET', first, new_sid)
  redis.call('PEXPIREAT', first, live.a)
end
announce(index, {sid})
if spec then history_add(history, spec, {revoked_entry(sid, reason)}) end
return redis.call('HGETALL', new_key)
