-- Shared names and helpers, prepended to every script by sessionstore/scripts.py (static text,
-- no interpolation). The names below are the wire format: sessionstore/keys.py (key parts)
-- and sessionstore/_engine/schema.py (fields, replies) hold the same names and values, and
-- tests/test_wire.py compares them.

-- Key parts: a user's keys are <ns>:{<enc uid>}: then SESSION_PART .. <sid> (a HASH) or
-- INDEX_PART (a ZSET: session id -> idle deadline ms); revocations are published on
-- <ns> .. REVOKED_CHANNEL_PART. Every key expires with its last deadline.
local SESSION_PART = 's:'
local INDEX_PART = 'idx'
local REVOKED_CHANNEL_PART = ':{!revoked}'

-- Session HASH fields. Times are the server's clock.
local CREATED = 'c'            -- µs
local SEEN = 's'               -- last seen, µs (µs keep same-ms events in order)
local IDLE_TTL = 'i'           -- ms
local ABSOLUTE_DEADLINE = 'a'  -- ms
local IDLE_DEADLINE = 'e'      -- ms, never past the absolute deadline
local DEVICE = 'v'             -- device id
local GENERATION = 'g'         -- refresh generation
local KEY_ID = 'k'             -- the key id it is signed with
local ROTATED_AT = 't'         -- last rotation, ms
local META = 'm'               -- chunk prefix of the meta blob (device texts, claims): m0, ...
local DATA = 'd'               -- chunk prefix of the data blob: d0, d1, ...
local DATA_CHUNKS = 'dn'       -- how many data chunks
-- The last proof of identity, each written only when not its default.
local AUTH_TIME = 'au'         -- s (absent: the session's creation)
local AMR = 'am'               -- authentication methods, space-separated (absent: none)
local ACR = 'al'               -- assurance level 1..9 (absent: 0)
local BROWSER_SESSION = 'bs'   -- '1': a browser-session login (absent: persistent)

-- Reply codes (schema.Reply).
local EXPIRED = -1             -- past a deadline (deleted on the way)
local REVOKED = 0              -- or never existed
local ROTATED = 1              -- refresh: the next generation
local GRACE = 2                -- refresh: the previous generation again, within the grace
local REUSED = 3               -- refresh: an older generation (the session is deleted)
local NO_REFRESH = 4           -- refresh: the session has no refresh token
local LIMIT = 5                -- create: at the user's session limit, refused (nothing written)
-- After a check script's fields: its due touch was refused, and the server's error follows.
local UNTOUCHED = '!untouched'

-- The server's clock in ms, and in µs.
local function clock()
  local t = redis.call('TIME')
  local s, us = tonumber(t[1]), tonumber(t[2])
  return s * 1000 + math.floor(us / 1000), s * 1000000 + us
end

local function now_ms()
  return (clock())
end

-- The session prefix is built from the declared index key, so discovered keys share its slot.
local function session_prefix(index)
  return string.sub(index, 1, #index - #INDEX_PART) .. SESSION_PART
end

-- The index outlives its longest-lived session by a minute, so that a late request can
-- still tell an expired session (deadline passed) from a revoked one (entry gone).
local function bump_index_ttl(index)
  local last = redis.call('ZRANGE', index, -1, -1, 'WITHSCORES')
  if last[2] then
    redis.call('PEXPIREAT', index, tonumber(last[2]) + 60000)
  end
end

-- Tell listening stores which sessions died (their degraded-mode revocation memory).
local function announce(index, sids)
  if #sids > 0 then
    local ns, tag = string.match(index, '^(.-):{(.-)}:')  -- no ':' in <ns>, no '}' in a tag
    redis.call('PUBLISH', ns .. REVOKED_CHANNEL_PART, tag .. ' ' .. table.concat(sids, ' '))
  end
end

local function forget(index, key, sid)
  redis.call('DEL', key)
  redis.call('ZREM', index, sid)
end

-- Drop up to `limit` index entries past their deadline (their hashes expire with them):
-- bounded work per script; later scripts drop the rest.
local function prune_expired(index, prefix, now, limit)
  for _, sid in ipairs(redis.call('ZRANGE', index, '-inf', now, 'BYSCORE', 'LIMIT', 0, limit)) do
    forget(index, prefix .. sid, sid)
  end
end

-- One bounded step over a user's index: ZSCAN from `cursor` (about `count` entries; an
-- entry present for the whole walk is seen at least once, maybe twice). Dead entries met
-- (past their deadline, or their hash gone) are dropped on the way. Returns the next
-- cursor ('0': done) and {sid, key} of the live entries met.
local function scan_live(index, prefix, cursor, count, now)
  local step = redis.call('ZSCAN', index, cursor, 'COUNT', count)
  local flat, live = step[2], {}
  for n = 1, #flat, 2 do
    local sid, key = flat[n], prefix .. flat[n]
    if tonumber(flat[n + 1]) <= now then
      forget(index, key, sid)
    elseif redis.call('EXISTS', key) == 0 then
      redis.call('ZREM', index, sid)
    else
      live[#live + 1] = {sid, key}
    end
  end
  return step[1], live
end

-- A chunk size or cursor from ARGV, or nil when malformed.
local function chunk_args(cursor, count)
  local c = tonumber(count)
  if not string.match(cursor, '^%d+$') or not c or c < 1 or c > 1000 then
    return nil
  end
  return cursor, c
end

-- Load a live session's clock fields, or nil and why not: REVOKED (or never existed),
-- EXPIRED. A session past a deadline is deleted on the way.
local function load_live(index, key, sid, now)
  local f = redis.call('HMGET', key, IDLE_DEADLINE, ABSOLUTE_DEADLINE, IDLE_TTL, SEEN)
  if not f[1] then
    local deadline = redis.call('ZSCORE', index, sid)
    redis.call('ZREM', index, sid)
    if deadline and tonumber(deadline) <= now then
      return nil, EXPIRED
    end
    return nil, REVOKED
  end
  local e, a = tonumber(f[1]), tonumber(f[2])
  if now >= e or now >= a then
    forget(index, key, sid)
    return nil, EXPIRED
  end
  return {e = e, a = a, i = tonumber(f[3]), s = tonumber(f[4])}
end

-- load_live on the server's clock now: a live session's fields, or nil and why not; then
-- now in ms.
local function live_now(index, key, sid)
  local now = now_ms()
  local live, why = load_live(index, key, sid, now)
  return live, why, now
end

-- Slide the idle deadline (never past the absolute one) and keep index and TTLs in step.
-- The first write goes through ``first`` (default redis.call): redis.pcall gets a refusal
-- back instead of failing the script. Under maxmemory with noeviction, a full server
-- refuses the first write of a script that may grow memory (later ones it lets through),
-- so when that HSET is refused nothing has been written: the refusal is returned.
local function slide(index, key, sid, live, now, now_us, first)
  local e = math.min(now + live.i, live.a)
  local done = (first or redis.call)('HSET', key, SEEN, now_us, IDLE_DEADLINE, e)
  if type(done) == 'table' and done.err then
    return done.err
  end
  redis.call('PEXPIREAT', key, e)
  redis.call('ZADD', index, e, sid)
  bump_index_ttl(index)
  live.e, live.s = e, now_us
end

-- Where the claims start in a meta blob: it is the msgpack array (name, user agent, ip,
-- claims), and the three device texts are msgpack strings (fixstr, str8 or str16).
local function claims_offset(meta)
  local pos = 2  -- after the array's header
  for _ = 1, 3 do
    local b = string.byte(meta, pos)
    if not b then
      return nil
    elseif b >= 0xa0 and b <= 0xbf then
      pos = pos + 1 + b - 0xa0
    elseif b == 0xd9 then
      pos = pos + 2 + string.byte(meta, pos + 1)
    elseif b == 0xda then
      local hi, lo = string.byte(meta, pos + 1, pos + 2)
      pos = pos + 3 + hi * 256 + lo
    else
      return nil
    end
  end
  return pos
end

-- Replace the claims of a session's meta blob (chunks of `size` bytes: META .. 0, ...) with
-- `claims` (one msgpack map); the device texts stay. False when the blob is not one we wrote.
local function set_claims(key, claims, size)
  local parts, n = {}, 0
  while true do
    local part = redis.call('HGET', key, META .. n)
    if not part then break end
    parts[#parts + 1] = part
    n = n + 1
  end
  local meta = table.concat(parts)
  local at = claims_offset(meta)
  if not at or at > #meta + 1 then
    return false
  end
  meta = string.sub(meta, 1, at - 1) .. claims
  local count = math.ceil(#meta / size)
  for m = count, n - 1 do
    redis.call('HDEL', key, META .. m)
  end
  for m = 0, count - 1 do
    redis.call('HSET', key, META .. m, string.sub(meta, m * size + 1, (m + 1) * size))
  end
  return true
end
