-- revoke: delete one session and its index entry. An id that rotate.lua moved away names
-- its session still: the live session its family moved to is deleted instead (a sign-out
-- with the tokens of before a rotation must not leave the rotated session alive).
-- KEYS[1] index ZSET, KEYS[2] session HASH, KEYS[3] the user's history LIST (history on)
-- ARGV[1] session id, ARGV[2] the history's spec ('' off), ARGV[3] why (one char, recorded
-- in the history when a live session was deleted)
-- Reply: 1 when that live session was deleted, the session id deleted in its place (a
-- string) when its family had moved, else 0.
local index, key, sid = KEYS[1], KEYS[2], ARGV[1]
local history, spec, why = KEYS[3], history_spec(ARGV[2]), ARGV[3]
if spec and (not history or not why or #why ~= 1) then
  return redis.error_reply('ERR sessionstore: bad revoke arguments')
end
local victim = sid  -- the live session deleted, if any
if redis.call('DEL', key) == 0 then
  victim = moved_live(index, sid, now_ms())
  if victim then forget(index, session_prefix(index) .. victim, victim) end
end
redis.call('ZREM', index, sid)
bump_index_ttl(index)
if not victim then return 0 end
announce(index, {victim})
if spec then history_add(history, spec, {revoked_entry(victim, why)}) end
if victim == sid then return 1 end
return victim
