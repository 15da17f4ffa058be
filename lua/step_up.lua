-- step_up: record a new proof of identity on a live session: the auth time set to now, the
-- method added to the methods (moved last when present; the oldest dropped past 8), the
-- level set. Nothing else changes (no slide, no TTL); never recreates a gone session.
-- KEYS[1] index ZSET, KEYS[2] session HASH, KEYS[3] the user's history LIST (history on)
-- ARGV[1] session id, ARGV[2] method, ARGV[3] level (1..9), ARGV[4] the history's spec
-- ('' off): the step-up is recorded there
-- Reply: REVOKED when revoked or missing, EXPIRED when expired (nothing written but
--        cleanup), else the session's fields after the step-up (HGETALL).
local index, key, sid, method = KEYS[1], KEYS[2], ARGV[1], ARGV[2]
local level = tonumber(ARGV[3])
local history, spec = KEYS[3], history_spec(ARGV[4])
if #method > 32 or not string.match(method, '^[a-z0-9][a-z0-9_.-]*$') or not level
    or level < 1 or level > 9 or level % 1 ~= 0 or (spec and not history) then
  return redis.error_reply('ERR sessionstore: bad step_up arguments')
end
local live, why, now = live_now(index, key, sid)
if not live then return why end
local methods = {}
for other in string.gmatch(redis.call('HGET', key, AMR) or '', '%S+') do
  if other ~= method then
    methods[#methods + 1] = other
  end
end
methods[#methods + 1] = method
while #methods > 8 do
  table.remove(methods, 1)
end
redis.call('HSET', key, AUTH_TIME, math.floor(now / 1000), AMR, table.concat(methods, ' '),
  ACR, level)
history_add(history, spec, {{H_STEP_UP, session_ref(sid) .. level .. method}})
return redis.call('HGETALL', key)
