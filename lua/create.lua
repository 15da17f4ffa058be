-- create: add one session for a user, evicting the least recently active ones past the cap.
-- KEYS[1] index ZSET, KEYS[2] the new session HASH, with the history on: KEYS[3] the
-- user's history LIST; then (optional) an adoption marker STRING: one legacy token's
-- session (all keys share the hash tag)
-- ARGV[1] session id, ARGV[2] idle ttl ms, ARGV[3] absolute ttl ms, ARGV[4] cap (the user's
-- session limit; negative: -cap, and a login at the limit is refused instead of evicting),
-- ARGV[5] device id, ARGV[6] the history's spec ('' off, see history_spec), ARGV[7] the
-- sign-in's history body ('' with the history off), with a marker only: ARGV[8] its ttl ms;
-- then field/value pairs stored as given (refresh state, blob chunks)
-- Reply: {created µs, idle deadline ms, absolute deadline ms, new device (1 or 0: no
-- sign-in in the history shows this device; 0 with the history off), evicted session
-- ids...}; with the marker already set: its session id (a string), and nothing written;
-- refused at the limit: {LIMIT, the live session ids, nearest their idle deadline first},
-- and nothing written (expired entries a bounded prune removes aside)
local index, key = KEYS[1], KEYS[2]
local sid, device = ARGV[1], ARGV[5]
local idle, absolute, cap = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local spec, signin = history_spec(ARGV[6]), ARGV[7]
local history, marker = nil, KEYS[3]
if spec then history, marker = KEYS[3], KEYS[4] end
local refuse = cap and cap < 0
if refuse then cap = -cap end
local first, marker_ttl = 8, nil
if marker then
  first, marker_ttl = 9, tonumber(ARGV[8])
end
if not idle or not absolute or not cap or idle < 1 or absolute < idle or cap < 1
    or (#ARGV - first + 1) % 2 ~= 0 or (marker and (not marker_ttl or marker_ttl < 1))
    or (spec and (not history or #signin < 19)) then
  return redis.error_reply('ERR sessionstore: bad create arguments')
end
if marker then
  local adopted = redis.call('GET', marker)
  if adopted then return adopted end
end
if redis.call('EXISTS', key) == 1 then
  return redis.error_reply('ERR sessionstore: session id collision')
end
local now, created = clock()
local prefix = session_prefix(index)
prune_expired(index, prefix, now, 100)
local evicted = {}
-- Entries not past their deadline (O(log n)); expired ones a bounded prune left are not
-- counted. The walk (one HGET per entry, at most the cap) runs only at the cap.
if refuse and redis.call('ZCOUNT', index, '(' .. now, '+inf') >= cap then
  -- Refuse, unless entries whose hash is gone (evicted or lost) made up the count.
  local reply = {LIMIT}
  for _, other in ipairs(redis.call('ZRANGE', index, '(' .. now, '+inf', 'BYSCORE')) do
    if redis.call('EXISTS', prefix .. other) == 1 then
      reply[#reply + 1] = other
    else
      redis.call('ZREM', index, other)
    end
  end
  if #reply > cap then return reply end
end
if redis.call('ZCOUNT', index, '(' .. now, '+inf') >= cap then
  -- Least recently active first: order by last-seen, then by id for a stable choice.
  local seen = {}
  for _, other in ipairs(redis.call('ZRANGE', index, '(' .. now, '+inf', 'BYSCORE')) do
    local s = redis.call('HGET', prefix .. other, SEEN)
    if s then
      seen[#seen + 1] = {tonumber(s), other}
    else
      redis.call('ZREM', index, other)  -- its hash is gone (evicted or lost)
    end
  end
  local function older(x, y)
    if x[1] == y[1] then return x[2] < y[2] end
    return x[1] < y[1]
  end
  local surplus = #seen - cap + 1
  if surplus == 1 then
    -- The usual case: one victim, found in one pass rather than a sort.
    local victim = seen[1]
    for n = 2, #seen do
      if older(seen[n], victim) then victim = seen[n] end
    end
    seen = {victim}
  elseif surplus > 1 then
    table.sort(seen, older)  -- the cap was lowered: several to evict
  end
  for n = 1, surplus do
    forget(index, prefix .. seen[n][2], seen[n][2])
    evicted[#evicted + 1] = seen[n][2]
  end
end
local a = now + absolute
local e = math.min(now + idle, a)
redis.call('HSET', key, CREATED, created, SEEN, created, IDLE_TTL, idle, ABSOLUTE_DEADLINE, a,
  IDLE_DEADLINE, e, DEVICE, device, unpack(ARGV, first))
redis.call('PEXPIREAT', key, e)
redis.call('ZADD', index, e, sid)
if marker then
  redis.call('SET', marker, sid, 'PX', marker_ttl)
end
bump_index_ttl(index)
announce(index, evicted)
local fresh = 0
if spec then
  local entries = {}
  for _, other in ipairs(evicted) do entries[#entries + 1] = revoked_entry(other, WHY_EVICTED) end
  if new_device(history, signin, marker ~= nil) then fresh = 1 end
  entries[#entries + 1] = {marker and H_ADOPTED or H_LOGIN, signin}
  history_add(history, spec, entries)
end
local reply = {created, e, a, fresh}
for _, other in ipairs(evicted) do reply[#reply + 1] = other end
return reply
