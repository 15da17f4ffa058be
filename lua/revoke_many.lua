-- revoke_many: delete a user's sessions on one device, or all of them but one.
-- KEYS[1] index ZSET
-- ARGV[1] mode: 'device' or 'user', ARGV[2] device id (device) or session id to keep ('' none)
-- Reply: the deleted session ids.
local index, mode, arg = KEYS[1], ARGV[1], ARGV[2]
if mode ~= 'device' and mode ~= 'user' then
  return redis.error_reply('ERR sessionstore: bad revoke mode')
end
local prefix = session_prefix(index)
local live = prune(index, prefix, now_ms())
local gone = {}
for _, sid in ipairs(live) do
  local hit
  if mode == 'device' then
    hit = redis.call('HGET', prefix .. sid, 'v') == arg
  else
    hit = sid ~= arg
  end
  if hit then
    forget(index, prefix .. sid, sid)
    gone[#gone + 1] = sid
  end
end
bump_index_ttl(index)
announce(index, gone)
return gone
