-- feed: append one revocation to the namespace's revocation stream, trimmed by age.
-- KEYS[1] the stream (<ns>:{!revocations}: its own slot, never a user's)
-- ARGV[1] retention ms, ARGV[2..] field/value pairs of the entry (the caller's: ids, reason)
-- Reply: the new entry's id.
-- Entries older than the retention go (MINID ~: whole stream nodes at a time, cheap), and
-- the key expires one retention after its last append: an idle namespace leaves nothing.
local FEED_AT = 'at'             -- the append's time, ms (server clock)
local stream, retention = KEYS[1], tonumber(ARGV[1])
if not retention or retention < 1 or #ARGV < 3 or (#ARGV - 1) % 2 ~= 0 then
  return redis.error_reply('ERR sessionstore: bad feed arguments')
end
local now = now_ms()
local id = redis.call('XADD', stream, 'MINID', '~', string.format('%d', now - retention), '*',
  FEED_AT, string.format('%d', now), unpack(ARGV, 2))
redis.call('PEXPIRE', stream, retention)
return id
