-- Shared names and helpers, prepended to every script by sessionstore/scripts.py (static text,
-- no interpolation; a script carries every name but only the functions it calls: keep each
-- top-level definition starting with `local` at the line's start). The names below are the wire format: sessionstore/keys.py (key parts)
-- and sessionstore/_engine/schema.py (fields, replies) hold the same names and values, and
-- tests/test_wire.py compares them.

-- Key parts: a user's keys are <ns>:{<enc uid>}: then SESSION_PART .. <sid> (a HASH) or
-- INDEX_PART (a ZSET: session id -> idle deadline ms) or MOVED_PART .. <sid> (a STRING: where
-- a rotated-away id's family lives now, see rotate.lua); revocations are published on
-- <ns> .. REVOKED_CHANNEL_PART. Every key expires with its last deadline.
local SESSION_PART = 's:'
local INDEX_PART = 'idx'
local MOVED_PART = 'mv:'
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
local ORIGIN = 'o'             -- rotated with refresh tokens: its family's first id

-- Reply codes (schema.Reply).
local EXPIRED = -1             -- past a deadline (deleted on the way)
local REVOKED = 0              -- or never existed
local ROTATED = 1              -- refresh: the next generation
local GRACE = 2                -- refresh: the previous generation again, within the grace
local REUSED = 3               -- refresh: an older generation, or a rotated-away id (deleted)
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

-- The moved keys' prefix (<prefix><sid>), built the same way.
local function moved_prefix(index)
  return string.sub(index, 1, #index - #INDEX_PART) .. MOVED_PART
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

-- Where the family of a gone session id `sid` lives now, if rotate.lua moved it: the live
-- session's id, or nil. Two reads at most (the id it moved to, or the family's first id,
-- then that one's). The moved keys share the index's hash tag and are built here, never
-- declared: one that almost never exists would make a migrating cluster slot answer
-- TRYAGAIN to every script that names it.
local function moved_live(index, sid, now)
  local prefix, moves = session_prefix(index), moved_prefix(index)
  local target = redis.call('GET', moves .. sid)
  for _ = 1, 2 do
    if not target then return nil end
    if load_live(index, prefix .. target, target, now) then return target end
    target = redis.call('GET', moves .. target)
  end
  return nil
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

-- History: a LIST per user (<ns>:{<enc uid>}:HISTORY_PART), newest first. Each entry
-- starts with one byte: its kind (bits 0-2) and, on the newest entry only, HISTORY_HEAD
-- (bit 3), then that entry's Unix seconds (4 bytes, big-endian); on any other entry, bits
-- 4-6 hold the low 3 bits of its gap in seconds to the entry before it (newer), and bit 7
-- says a base-128 varint of the rest of the gap follows. Then the entry's body
-- (sessionstore/_engine/history.py reads it all back). No token, refresh secret or key is
-- ever written: session ids in full on sign-ins only, else their first SESSION_REF chars
-- as the 3 bytes they encode (session_ref).
local HISTORY_PART = 'h'
local HISTORY_HEAD = 8
local SESSION_REF = 4
local H_LOGIN = 0               -- body: session id (16 bytes), device (see signin_device)
local H_ADOPTED = 1             -- a legacy token's sign-in: as H_LOGIN
local H_REFRESH = 2             -- body: session ref
local H_STEP_UP = 3             -- body: session ref, level (1 digit), method
local H_REVOKED = 4             -- body: session ref, why (1 char, see _engine/history.py)
local H_REUSE = 5               -- body: session ref
local IP_V4 = '4'               -- a sign-in's IP: 4 bytes follow
local IP_V6 = '6'               -- 16 bytes follow
local IP_TEXT = 't'             -- not an address: a length byte and the text follow
local WHY_EVICTED = 'e'         -- the reasons the scripts write themselves (the others:
local WHY_REUSE = 'z'           -- from ARGV, _engine/history.py REASONS)

-- The history's settings from an ARGV: '' (off: nil) or '<cap> <ttl ms>'; read before a
-- script's first write (a malformed one fails the script).
local function history_spec(arg)
  if arg == nil or arg == '' then return nil end
  local cap, ttl = string.match(arg, '^(%d+) (%d+)$')
  cap, ttl = tonumber(cap), tonumber(ttl)
  if not cap or not ttl or cap < 1 or ttl < 1 then
    error(redis.error_reply('ERR sessionstore: bad history arguments'))
  end
  return {cap = cap, ttl = ttl}
end

-- An entry of `kind` with `body`, in its newest form (at `now`, Unix seconds).
local function history_entry(kind, body, now)
  return string.char(kind + HISTORY_HEAD) .. struct.pack('>I4', now) .. body
end

-- An entry in its newest form at `now`, rewritten as an older one: `gap` seconds before
-- the entry that is now newer than it.
local function aged(entry, gap)
  local kind = string.byte(entry, 1) % HISTORY_HEAD
  local rest = math.floor(gap / 8)
  local out = string.char(kind + (gap % 8) * 16 + (rest > 0 and 128 or 0))
  while rest > 0 do
    local more = math.floor(rest / 128)
    out = out .. string.char(rest % 128 + (more > 0 and 128 or 0))
    rest = more
  end
  return out .. string.sub(entry, 6)
end

-- Append entries {kind, body} at the server's time, in order (the last one newest), keep
-- the newest spec.cap and expire the list spec.ttl ms after this append. A no-op when the
-- history is off (spec nil). Any script that changes sessions calls it the same way.
local function history_add(history, spec, entries)
  if not spec or #entries == 0 then return end
  local now = math.floor(now_ms() / 1000)
  local head = redis.call('LINDEX', history, 0)
  if head and #head >= 5 and math.floor(string.byte(head, 1) / HISTORY_HEAD) % 2 == 1 then
    local gap = math.max(0, now - struct.unpack('>I4', head, 2))
    redis.call('LSET', history, 0, aged(head, gap))
  end
  for n, entry in ipairs(entries) do
    local item = history_entry(entry[1], entry[2], now)
    if n < #entries then item = aged(item, 0) end
    redis.call('LPUSH', history, item)
  end
  redis.call('LTRIM', history, 0, spec.cap - 1)
  redis.call('PEXPIRE', history, spec.ttl)
end

local base64url = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'

-- How entries other than sign-ins name their session: the first SESSION_REF (4) chars of
-- its id, as the 3 bytes they encode.
local function session_ref(sid)
  local n = 0
  for i = 1, SESSION_REF do
    n = n * 64 + string.find(base64url, string.sub(sid, i, i), 1, true) - 1
  end
  return string.char(math.floor(n / 65536), math.floor(n / 256) % 256, n % 256)
end

-- The entry recording a session revoked for `why` (a one-char reason).
local function revoked_entry(sid, why)
  return {H_REVOKED, session_ref(sid) .. why}
end

-- Where an entry's body starts.
local function body_start(entry)
  local first = string.byte(entry, 1)
  if math.floor(first / HISTORY_HEAD) % 2 == 1 then return 6 end
  local p = 2
  if first >= 128 then
    while string.byte(entry, p) >= 128 do p = p + 1 end
    p = p + 1
  end
  return p
end

-- What identifies a sign-in's device (its body, after the 16 bytes of its session id):
-- the device id, and its UA family code with its IP's network ('' without an IP).
local function signin_device(body)
  local ua, tag, p, net = string.sub(body, 17, 17), string.sub(body, 18, 18), 19, ''
  if tag == IP_V4 then
    net, p = string.sub(body, 19, 21), 23      -- an IPv4 /24
  elseif tag == IP_V6 then
    net, p = string.sub(body, 19, 24), 35      -- an IPv6 /48
  elseif tag == IP_TEXT then
    local n = string.byte(body, 19)
    net, p = string.sub(body, 20, 19 + n), 20 + n
  end
  local stop = string.find(body, '\0', p, true) or (#body + 1)
  if net ~= '' then net = ua .. tag .. net end
  return string.sub(body, p, stop - 1), net
end

-- Whether no sign-in in the history (a bounded walk: at most its cap) shows the device of
-- sign-in `body`: neither its device id nor its UA family and IP network. An adoption's
-- device id is the same for every legacy token (LegacyTokens.device_id), so on either side
-- of an adoption (`adopted`: this sign-in is one) only the UA family and network count.
local function new_device(history, body, adopted)
  local id, net = signin_device(body)
  for _, entry in ipairs(redis.call('LRANGE', history, 0, -1)) do
    local kind = string.byte(entry, 1) % HISTORY_HEAD
    if kind == H_LOGIN or kind == H_ADOPTED then
      local seen_id, seen_net = signin_device(string.sub(entry, body_start(entry)))
      local same_id = not adopted and kind == H_LOGIN and seen_id == id
      if same_id or (net ~= '' and seen_net == net) then return false end
    end
  end
  return true
end
