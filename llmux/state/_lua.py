"""The one Lua script every Redis routing call runs; see `llmux.state.redis_routing`."""

from __future__ import annotations

__all__ = ["GROUP_SCRIPT"]

GROUP_SCRIPT = """
-- One model group, atomically: apply this replica's writes in order, then (optionally) take a
-- round-robin turn and read what routing needs of the listed deployments.
-- KEYS[1]: the group's key base "{<prefix><group>}"; every key below extends it, so all share
-- its hash tag and one cluster slot.
-- ARGV: replica, alive_ms, alpha, window, penalty_floor, n_ops,
--       n_ops x (kind, deployment, a, b), take_turn (0/1), n_reads, n_reads x deployment.
local base = KEYS[1]
local replica = ARGV[1]
local alpha = tonumber(ARGV[3])
local window = tonumber(ARGV[4])
local floor = tonumber(ARGV[5])
local day = 86400000
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('SET', base .. ':alive:' .. replica, '1', 'PX', ARGV[2])

local function roll(key)
  local w = redis.call('HMGET', key, 'cs', 'cr', 'ct', 'pr', 'pt')
  local cs = tonumber(w[1])
  if cs == nil then return now, 0, 0, 0, 0 end
  local cr, ct = tonumber(w[2]) or 0, tonumber(w[3]) or 0
  local pr, pt = tonumber(w[4]) or 0, tonumber(w[5]) or 0
  local elapsed = now - cs
  if elapsed < window then return cs, cr, ct, pr, pt end
  if elapsed < 2 * window then return cs + window, 0, 0, cr, ct end
  return now, 0, 0, 0, 0
end

local function ewma(old, sample)
  if old == nil then return sample end
  return old + alpha * (sample - old)
end

local i = 7
for _ = 1, tonumber(ARGV[6]) do
  local kind, dep = ARGV[i], ARGV[i + 1]
  local a, b = tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
  i = i + 4
  if kind == 'f' then
    -- this replica's in-flight count of the deployment, absolute
    local key = base .. ':if:' .. dep
    if a > 0 then redis.call('HSET', key, replica, a) else redis.call('HDEL', key, replica) end
    redis.call('PEXPIRE', key, day)
  elseif kind == 'w' then
    -- a requests and b tokens into the usage window
    local key = base .. ':w:' .. dep
    local cs, cr, ct, pr, pt = roll(key)
    redis.call('HSET', key, 'cs', tostring(cs), 'cr', tostring(cr + a), 'ct', tostring(ct + b),
      'pr', tostring(pr), 'pt', tostring(pt))
    redis.call('PEXPIRE', key, math.ceil(window * 2000))
  elseif kind == 'l' then
    -- a latency sample a; b is the failure penalty factor (1: a success)
    local key = base .. ':l:' .. dep
    local l = redis.call('HMGET', key, 'lat', 'ttft')
    local lat, ttft = tonumber(l[1]), tonumber(l[2])
    if b == 1 then
      lat = ewma(lat, a)
    else
      local worst = math.max(a, floor)
      if lat ~= nil then worst = math.max(a, lat) end
      lat = ewma(lat, worst * b)
      if ttft ~= nil then ttft = ewma(ttft, math.max(a, ttft) * b) end
    end
    redis.call('HSET', key, 'lat', tostring(lat))
    if ttft ~= nil then redis.call('HSET', key, 'ttft', tostring(ttft)) end
    redis.call('PEXPIRE', key, day)
  elseif kind == 't' then
    -- a time-to-first-token sample a
    local key = base .. ':l:' .. dep
    redis.call('HSET', key, 'ttft', tostring(ewma(tonumber(redis.call('HGET', key, 'ttft')), a)))
    redis.call('PEXPIRE', key, day)
  elseif kind == 'c' then
    -- cooling down for a more milliseconds (only ever lengthened)
    local key = base .. ':c:' .. dep
    if redis.call('PTTL', key) < a then redis.call('SET', key, '1', 'PX', a) end
  end
end

local out = {-1}
if ARGV[i] == '1' then
  out[1] = redis.call('INCR', base .. ':rr') - 1
  redis.call('PEXPIRE', base .. ':rr', day)
end
local n = tonumber(ARGV[i + 1])
i = i + 2
for k = 0, n - 1 do
  local dep = ARGV[i + k]
  local others = 0
  local key = base .. ':if:' .. dep
  local held = redis.call('HGETALL', key)
  for j = 1, #held, 2 do
    local who = held[j]
    if who ~= replica then
      if redis.call('EXISTS', base .. ':alive:' .. who) == 1 then
        others = others + tonumber(held[j + 1])
      else
        redis.call('HDEL', key, who)
      end
    end
  end
  local cs, cr, ct, pr, pt = roll(base .. ':w:' .. dep)
  local into = now - cs
  local overlap = math.max(1 - into / window, 0)
  local l = redis.call('HMGET', base .. ':l:' .. dep, 'lat', 'ttft')
  out[#out + 1] = others
  out[#out + 1] = tostring(pr * overlap + cr)
  out[#out + 1] = tostring(pt * overlap + ct)
  out[#out + 1] = tostring(math.max(window - into, 0))
  out[#out + 1] = l[1] or ''
  out[#out + 1] = l[2] or ''
  out[#out + 1] = redis.call('PTTL', base .. ':c:' .. dep)
end
return out
"""
