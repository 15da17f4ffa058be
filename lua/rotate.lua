-- rotate: move a live session to a new session id, and revoke the old one, in one step.
-- Everything stays (device, data, claims, auth facts, browser-session flag, creation time,
-- deadlines, TTL) but the refresh state: a kid starts generation 1 under the new id, none
-- leaves the new session without refresh tokens. The old id's index entry is replaced by
-- the new one and its revocation announced; never recreates a gone session.
-- KEYS[1] index ZSET, KEYS[2] the session HASH, KEYS[3] the new session HASH (same hash tag),
-- KEYS[4] the user's history LIST (history on)
-- ARGV[1] session id, ARGV[2] new session id, ARGV[3] key id to sign with ('': no refresh
-- state), ARGV[4] the new claims (a msgpack map; '': kept), ARGV[5] meta chunk size,
-- ARGV[6] the history's spec ('' off), ARGV[7] why (one char: the old id's revocation, as
-- the history records it)
-- Reply: REVOKED when revoked or missing, EXPIRED when expired (nothing written but
--        cleanup), else the new session's fields (HGETALL).
local index, key, new_key = KEYS[1], KEYS[2], KEYS[3]
local sid, new_sid, kid, claims = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local size = tonumber(ARGV[5])
local history, spec, reason = KEYS[4], history_spec(ARGV[6]), ARGV[7]
if not size or size < 1 or new_sid == '' or new_sid == sid
    or (spec and (not history or not reason or #reason ~= 1)) then
  return redis.error_reply('ERR sessionstore: bad rotate arguments')
end
local live, why = live_now(index, key, sid)
if not live then return why end
if redis.call('EXISTS', new_key) == 1 then
  return redis.error_reply('ERR sessionstore: session id collision')
end
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
announce(index, {sid})
if spec then history_add(history, spec, {revoked_entry(sid, reason)}) end
return redis.call('HGETALL', new_key)
