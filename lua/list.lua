-- list: a user's live sessions, pruning dead index entries on the way.
-- KEYS[1] index ZSET
-- Reply: {{session id, HGETALL fields...}, ...}
local index = KEYS[1]
local prefix = session_prefix(index)
local live = prune(index, prefix, now_ms())
local reply = {}
for _, sid in ipairs(live) do
  local fields = redis.call('HGETALL', prefix .. sid)
  table.insert(fields, 1, sid)
  reply[#reply + 1] = fields
end
bump_index_ttl(index)
return reply
