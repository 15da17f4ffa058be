-- list: one bounded step through a user's live sessions, pruning dead index entries on the way.
-- KEYS[1] index ZSET
-- ARGV[1] ZSCAN cursor ('0' first), ARGV[2] about how many entries to look at (1..1000)
-- Reply: {next cursor ('0': done), {session id, HGETALL fields...}, ...}; a session may come
-- twice over a walk (ZSCAN's guarantee), so the caller keeps one per id.
local index = KEYS[1]
local cursor, count = chunk_args(ARGV[1], ARGV[2])
if not cursor then
  return redis.error_reply('ERR sessionstore: bad list arguments')
end
local next_cursor, live = scan_live(index, session_prefix(index), cursor, count, now_ms())
local reply = {next_cursor}
for _, entry in ipairs(live) do
  local fields = redis.call('HGETALL', entry[2])
  table.insert(fields, 1, entry[1])
  reply[#reply + 1] = fields
end
bump_index_ttl(index)
return reply
