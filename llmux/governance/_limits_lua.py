"""The Lua scripts `llmux.governance.redis_limits` runs: one per acquire, one per settle.

They implement exactly the windows of `llmux.governance.limits` (same buckets, same bound).
"""

from __future__ import annotations

from llmux.governance.limits import BUCKET_SECONDS, PARALLEL_RETRY_SECONDS, SPAN

__all__ = ["ACQUIRE_SCRIPT", "SETTLE_SCRIPT"]

_ACQUIRE_BODY = """
-- Admit one request against n limits atomically, or refuse it counting nothing.
-- KEYS: per limit, 3 keys: request window, token window, parallel set.
-- ARGV: now ('' = the Redis server's clock), tokens, lease id, parallel lease ttl (s),
--       then per limit: rpm, tpm, parallel (-1: no such limit).
-- A window is a hash: 'sum' (all counted), 'lo' / 'hi' (oldest / newest bucket that may have a
-- field), and one field per non-empty bucket. The parallel set holds lease ids scored by when
-- they stop counting, so leases of a crashed replica free themselves after the ttl.
-- Returns: ok (1/0), refusing limit (1-based, 0 if ok), refused kind (1 rpm, 2 tpm,
-- 3 parallel), retry after ms (-1: never fits), then per limit: requests counted, requests
-- reset ms, tokens counted, tokens reset ms, token bucket (after counting if ok).
local now = tonumber(ARGV[1])
if now == nil then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local tokens = tonumber(ARGV[2])
local lease = ARGV[3]
local ttl = tonumber(ARGV[4])
local n = #KEYS / 3
local current = math.floor(now / WIDTH)
local first = current - SPAN

local function roll(key)
  local st = redis.call('HMGET', key, 'sum', 'lo', 'hi')
  local sum = tonumber(st[1])
  if sum == nil then return {sum = 0} end
  local lo, hi = tonumber(st[2]), tonumber(st[3])
  if lo >= first then return {sum = sum, lo = lo, hi = hi} end
  if hi < first then
    redis.call('DEL', key)
    return {sum = 0}
  end
  local gone = {}
  for i = lo, first - 1 do gone[#gone + 1] = tostring(i) end
  for _, v in ipairs(redis.call('HMGET', key, unpack(gone))) do
    if v then sum = sum - tonumber(v) end
  end
  redis.call('HDEL', key, unpack(gone))
  redis.call('HSET', key, 'sum', sum, 'lo', first)
  return {sum = sum, lo = first, hi = hi}
end

local function reset_ms(w)
  if w.sum <= 0 or w.hi == nil then return 0 end
  return math.ceil(((w.hi + SPAN + 1) * WIDTH - now) * 1000)
end

local function retry_ms(key, w, limit, amount)
  if amount > limit then return -1 end
  local excess = w.sum + amount - limit
  local fields = {}
  for i = w.lo, w.hi do fields[#fields + 1] = tostring(i) end
  for j, v in ipairs(redis.call('HMGET', key, unpack(fields))) do
    if v then excess = excess - tonumber(v) end
    if excess <= 0 then return math.ceil(((w.lo + j + SPAN) * WIDTH - now) * 1000) end
  end
  return 0
end

local function add(key, w, amount)
  -- the newest bucket if the clock went backwards, so every field stays within lo..hi
  local b = current
  if w.hi ~= nil and w.hi >= b then b = w.hi end
  if w.lo == nil then w.lo = b end
  w.hi = b
  redis.call('HINCRBY', key, b, amount)
  w.sum = redis.call('HINCRBY', key, 'sum', amount)
  redis.call('HSET', key, 'lo', w.lo, 'hi', w.hi)
  redis.call('PEXPIRE', key, math.ceil((SPAN + 2) * WIDTH * 1000))
  return b
end

local function limits(i)
  return tonumber(ARGV[3 * i + 2]), tonumber(ARGV[3 * i + 3]), tonumber(ARGV[3 * i + 4])
end

local req, tok, inflight = {}, {}, {}
local refused, kind, retry = 0, 0, 0
for i = 1, n do
  local rpm, tpm, par = limits(i)
  local rkey, tkey, pkey = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  req[i] = {sum = 0}
  tok[i] = {sum = 0}
  if rpm >= 0 then req[i] = roll(rkey) end
  if tpm >= 0 then tok[i] = roll(tkey) end
  if par >= 0 then
    redis.call('ZREMRANGEBYSCORE', pkey, '-inf', now)
    inflight[i] = redis.call('ZCARD', pkey)
  end
  if refused == 0 then
    if rpm >= 0 and req[i].sum + 1 > rpm then
      refused, kind, retry = i, 1, retry_ms(rkey, req[i], rpm, 1)
    elseif tpm >= 0 and tok[i].sum + tokens > tpm then
      refused, kind, retry = i, 2, retry_ms(tkey, tok[i], tpm, tokens)
    elseif par >= 0 and inflight[i] >= par then
      refused, kind, retry = i, 3, PARALLEL_RETRY_MS
    end
  end
end

local buckets = {}
if refused == 0 then
  for i = 1, n do
    local rpm, tpm, par = limits(i)
    if rpm >= 0 then add(KEYS[3 * i - 2], req[i], 1) end
    buckets[i] = current
    if tpm >= 0 then buckets[i] = add(KEYS[3 * i - 1], tok[i], tokens) end
    if par >= 0 then
      redis.call('ZADD', KEYS[3 * i], now + ttl, lease)
      redis.call('PEXPIRE', KEYS[3 * i], math.ceil(ttl * 1000) + 1000)
    end
  end
end

local out = {refused == 0 and 1 or 0, refused, kind, retry}
for i = 1, n do
  out[#out + 1] = req[i].sum
  out[#out + 1] = reset_ms(req[i])
  out[#out + 1] = tok[i].sum
  out[#out + 1] = reset_ms(tok[i])
  out[#out + 1] = buckets[i] or current
end
return out
"""

ACQUIRE_SCRIPT = (
    f"local SPAN = {SPAN}\nlocal WIDTH = {BUCKET_SECONDS!r}\n"
    f"local PARALLEL_RETRY_MS = {PARALLEL_RETRY_SECONDS * 1000}\n{_ACQUIRE_BODY}"
)
"""The acquire script, with the window constants of `llmux.governance.limits` spliced in."""

SETTLE_SCRIPT = """
-- Settle one lease: correct its token reservations, free its parallel slots.
-- KEYS: the token windows it reserved in, then the parallel sets it holds a slot in.
-- ARGV: number of token windows, delta (actual - reserved), lease id, then one bucket per window.
-- A bucket that has dropped out of its window is left alone: it no longer counts.
local windows, delta, lease = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
for i = 1, windows do
  local key, bucket = KEYS[i], ARGV[3 + i]
  if delta ~= 0 and redis.call('HEXISTS', key, bucket) == 1 then
    redis.call('HINCRBY', key, bucket, delta)
    redis.call('HINCRBY', key, 'sum', delta)
  end
end
for i = windows + 1, #KEYS do
  redis.call('ZREM', KEYS[i], lease)
end
return 1
"""
