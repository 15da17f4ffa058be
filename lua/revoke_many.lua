-- revoke_many: one bounded step deleting a user's sessions on one device, or all but one.
-- KEYS[1] index ZSET, KEYS[2] the user's history LIST (history on)
-- ARGV[1] mode: 'device' or 'user', ARGV[2] device id (device) or session id to keep ('' none),
-- ARGV[3] ZSCAN cursor ('0' first), ARGV[4] about how many entries to look at (1..1000),
-- ARGV[5] cutoff µs ('' on the first step: now), ARGV[6] the history's spec ('' off),
-- ARGV[7] why (one char, recorded in the history for each session deleted)
-- Reply: {next cursor ('0': done), cutoff, deleted session ids...}
-- Sessions created after the cutoff are spared: a walk in steps revokes exactly what one
-- atomic script run at the first step would have, whatever logins happen in between.
local index, mode, arg = KEYS[1], ARGV[1], ARGV[2]
local cursor, count = chunk_args(ARGV[3], ARGV[4])
local history, spec, why = KEYS[2], history_spec(ARGV[6]), ARGV[7]
local now, now_us = clock()
local cutoff = now_us
if ARGV[5] ~= '' then
  cutoff = tonumber(ARGV[5])
end
if (mode ~= 'device' and mode ~= 'user') or not cursor or not cutoff
    or (spec and (not history or not why or #why ~= 1)) then
  return redis.error_reply('ERR sessionstore: bad revoke arguments')
end
local next_cursor, live = scan_live(index, session_prefix(index), cursor, count, now)
local gone = {}
for _, entry in ipairs(live) do
  local sid, key = entry[1], entry[2]
  local f = redis.call('HMGET', key, CREATED, DEVICE)
  local hit
  if mode == 'device' then
    hit = f[2] == arg
  else
    hit = sid ~= arg
  end
  if hit and tonumber(f[1]) <= cutoff then
    forget(index, key, sid)
    gone[#gone + 1] = sid
  end
end
bump_index_ttl(index)
announce(index, gone)
if spec then
  local entries = {}
  for _, sid in ipairs(gone) do entries[#entries + 1] = revoked_entry(sid, why) end
  history_add(history, spec, entries)
end
local reply = {next_cursor, string.format('%d', cutoff)}
for _, sid in ipairs(gone) do reply[#reply + 1] = sid end
return reply
