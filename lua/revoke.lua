-- revoke: delete one session and its index entry.
-- KEYS[1] index ZSET, KEYS[2] session HASH, KEYS[3] the user's history LIST (history on)
-- ARGV[1] session id, ARGV[2] the history's spec ('' off), ARGV[3] why (one char, recorded
-- in the history when a live session was deleted)
-- Reply: 1 when a live session was deleted, else 0.
local index, key, sid = KEYS[1], KEYS[2], ARGV[1]
local history, spec, why = KEYS[3], history_spec(ARGV[2]), ARGV[3]
if spec and (not history or not why or #why ~= 1) then
  return redis.error_reply('ERR sessionstore: bad revoke arguments')
end
local existed = redis.call('DEL', key)
redis.call('ZREM', index, sid)
bump_index_ttl(index)
if existed == 1 then
  announce(index, {sid})
  if spec then history_add(history, spec, {revoked_entry(sid, why)}) end
end
return existed
