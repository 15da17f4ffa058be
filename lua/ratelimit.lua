-- ratelimit: GCRA (generic cell rate algorithm) on one key: at most `limit` hits per `period`,
-- spread out: after a burst of `limit`, one more hit is allowed every period / limit.
-- KEYS[1] STRING: the theoretical arrival time (TAT) of the next hit, server ms
-- ARGV[1] limit (>= 1), ARGV[2] period ms (>= 1), ARGV[3] cost (>= 0; 0 only peeks)
-- Reply: {allowed 1|0, remaining hits, retry after ms (0 when allowed), reset ms}
--   reset: how long until the key is back to a full budget (and expires).
local key = KEYS[1]
local limit, period, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if not (limit and period and cost) or limit < 1 or period < 1 or cost < 0 then
  return redis.error_reply('ERR sessionstore: bad rate limit arguments')
end
local now = now_ms()
local interval = period / limit
local tat = tonumber(redis.call('GET', key)) or now
if tat < now then
  tat = now
end
local next_tat = tat + interval * cost
local allow_at = next_tat - period
if now < allow_at then
  -- Refused: nothing is written, so hammering a closed door does not push it further shut.
  return {0, 0, math.ceil(allow_at - now), math.ceil(tat - now)}
end
local reset = math.ceil(next_tat - now)
if cost > 0 then
  -- The key lives exactly as long as it holds anything: at expiry the budget is full again.
  redis.call('SET', key, math.ceil(next_tat), 'PX', math.max(1, reset))
end
return {1, math.floor((period - (next_tat - now)) / interval), 0, reset}
