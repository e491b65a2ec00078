-- prodex gateway: admission on Redis, one atomic round trip per call.
-- A port of core::admission (admit, settle, release) over the same JSON state, so every backend
-- applies the same rules; tests/store.rs checks Redis against the others.
-- The shell computes calendar period starts (UTC) and passes them in; numbers are Lua doubles
-- (exact below 2^53: micro-USD, milliseconds and token counts stay far below).

local WINDOW = 60
local MAX_SKEW = 5 -- core::admission::MAX_SKEW_SECS

local function window(w)
  if type(w) ~= 'table' or type(w.buckets) ~= 'table' then return {} end
  return w.buckets
end

-- The second a window is read at: now, or the newest bucket's second when a call stamped later
-- already counted (calls arrive out of order; core::admission::Window::effective).
local function weff(b, now)
  local last = b[#b]
  if last and last[1] > now then return math.min(last[1], now + MAX_SKEW) end
  return now
end

local function wsum(b, now)
  now = weff(b, now)
  local s = 0
  for _, p in ipairs(b) do
    if p[1] + WINDOW > now and p[1] <= now then s = s + p[2] end
  end
  return s
end

local function wadd(b, sec, n, now)
  now = weff(b, now)
  local kept = {}
  for _, p in ipairs(b) do
    if p[1] + WINDOW > now then kept[#kept + 1] = p end
  end
  for _, p in ipairs(kept) do
    if p[1] == sec then
      p[2] = math.max(0, p[2] + n)
      return kept
    end
  end
  if n > 0 then
    kept[#kept + 1] = {sec, n}
    table.sort(kept, function(a, b) return a[1] < b[1] end)
  end
  return kept
end

local function decode(text)
  local c = {}
  if text then c = cjson.decode(text) end
  c.period_start = c.period_start or 0
  c.requests = c.requests or 0
  c.spend_microusd = c.spend_microusd or 0
  c.reserved_microusd = c.reserved_microusd or 0
  c.in_flight = c.in_flight or 0
  c.rq = window(c.minute_requests)
  c.tk = window(c.minute_tokens)
  return c
end

local function int(n) return string.format('%.0f', n) end

local function encode_window(b)
  local parts = {}
  for i, p in ipairs(b) do parts[i] = '[' .. int(p[1]) .. ',' .. int(p[2]) .. ']' end
  return '{"buckets":[' .. table.concat(parts, ',') .. ']}'
end

local function encode(c)
  return '{"period_start":' .. int(c.period_start) .. ',"requests":' .. int(c.requests) ..
    ',"spend_microusd":' .. int(c.spend_microusd) .. ',"reserved_microusd":' .. int(c.reserved_microusd) ..
    ',"in_flight":' .. int(c.in_flight) .. ',"minute_requests":' .. encode_window(c.rq) ..
    ',"minute_tokens":' .. encode_window(c.tk) .. '}'
end

local function roll(c, start)
  if c.period_start ~= start then
    c.period_start = start
    c.requests = 0
    c.spend_microusd = 0
  end
end

local function release(c, ask_cost, ask_tokens, at, now_sec)
  c.reserved_microusd = math.max(0, c.reserved_microusd - ask_cost)
  c.in_flight = math.max(0, c.in_flight - 1)
  if at >= c.period_start then c.requests = math.max(0, c.requests - 1) end
  c.tk = wadd(c.tk, math.floor(at / 1000), -ask_tokens, now_sec)
end

local mode = ARGV[1]

-- core::admission::admit, rule by rule and in its order: the refusal (0 = admitted).
local function decide(c, budget, req_budget, rpm, tpm, par, ask_cost, ask_tokens, now_sec)
  if req_budget >= 0 and c.requests >= req_budget then -- 1 RequestBudget
    return 1
  elseif budget >= 0 and -- 2 SpendBudget: committed + open reservations + this worst case
      (c.spend_microusd + c.reserved_microusd + ask_cost > budget or c.spend_microusd + c.reserved_microusd >= budget) then
    return 2
  elseif rpm >= 0 and wsum(c.rq, now_sec) >= rpm then -- 3 Rpm (retry-after: the shell, from the window)
    return 3
  elseif tpm >= 0 and wsum(c.tk, now_sec) > 0 and wsum(c.tk, now_sec) + ask_tokens > tpm then -- 4 Tpm (alone it may run)
    return 4
  elseif par >= 0 and c.in_flight >= par then -- 5 Parallel
    return 5
  end
  return 0
end

-- Releases the scope's reservations that expired before `before` (a dead holder's):
-- core::admission::release each, as the Postgres store's expire_reservations does.
local function sweep(c, resv_key, before, now_sec)
  local held = redis.call('HGETALL', resv_key)
  for i = 1, #held, 2 do
    local h = cjson.decode(held[i + 1])
    if h.expires_at < before then
      release(c, h.ask_cost, h.ask_tokens, h.at, now_sec)
      redis.call('HDEL', resv_key, held[i])
    end
  end
end

if mode == 'reserve' then
  -- KEYS: limit, resv. ARGV: mode, now, period_start, budget, request_budget, rpm, tpm, parallel,
  -- ask_cost, ask_tokens, call_id, held_json, sampled (1 = this call sweeps in any case)
  local now, start = tonumber(ARGV[2]), tonumber(ARGV[3])
  local budget, req_budget, rpm, tpm, par = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
  local ask_cost, ask_tokens = tonumber(ARGV[9]), tonumber(ARGV[10])
  local now_sec = math.floor(now / 1000)
  local c = decode(redis.call('GET', KEYS[1]))
  -- core::admission::sweeps_expired: with calls in flight, sweep on sampled calls and whenever
  -- the call would be refused (judged on a rolled copy, as admit rolls first).
  if c.in_flight > 0 then
    local probe = decode(redis.call('GET', KEYS[1]))
    roll(probe, start)
    if ARGV[13] == '1' or decide(probe, budget, req_budget, rpm, tpm, par, ask_cost, ask_tokens, now_sec) ~= 0 then
      sweep(c, KEYS[2], now, now_sec)
    end
  end
  roll(c, start) -- roll_period: a new calendar period starts from zero
  local refusal = decide(c, budget, req_budget, rpm, tpm, par, ask_cost, ask_tokens, now_sec)
  if refusal == 0 then
    c.requests = c.requests + 1
    c.reserved_microusd = c.reserved_microusd + ask_cost
    c.in_flight = c.in_flight + 1
    c.rq = wadd(c.rq, now_sec, 1, now_sec)
    c.tk = wadd(c.tk, now_sec, ask_tokens, now_sec)
    redis.call('HSET', KEYS[2], ARGV[11], ARGV[12])
  end
  local state = encode(c)
  redis.call('SET', KEYS[1], state)
  return {refusal, state}
end

if mode == 'finish' then
  -- KEYS: rows, ledger, key index, limit, resv, tenant index ('' without a tenant). ARGV: mode,
  -- member, row, call_id, has_reservation, used (1/0), cost, tokens, now, period_start_now,
  -- reserved_at, ask_cost, ask_tokens
  if redis.call('HSETNX', KEYS[1], ARGV[2], ARGV[3]) == 0 then return 0 end
  redis.call('ZADD', KEYS[2], 0, ARGV[2])
  redis.call('ZADD', KEYS[3], 0, ARGV[2])
  if KEYS[6] ~= '' then redis.call('ZADD', KEYS[6], 0, ARGV[2]) end
  if ARGV[5] == '1' then
    local used, cost, tokens = ARGV[6] == '1', tonumber(ARGV[7]), tonumber(ARGV[8])
    local now, start, at = tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11])
    local ask_cost, ask_tokens = tonumber(ARGV[12]), tonumber(ARGV[13])
    local now_sec = math.floor(now / 1000)
    local c = decode(redis.call('GET', KEYS[4]))
    local held = redis.call('HDEL', KEYS[5], ARGV[4]) == 1
    if held and used then -- core::admission::settle
      c.reserved_microusd = math.max(0, c.reserved_microusd - ask_cost)
      c.in_flight = math.max(0, c.in_flight - 1)
      roll(c, start)
      c.spend_microusd = c.spend_microusd + cost
      c.tk = wadd(c.tk, math.floor(at / 1000), tokens - ask_tokens, now_sec)
    elseif held then -- core::admission::release
      release(c, ask_cost, ask_tokens, at, now_sec)
    elseif used then
      -- core::admission::settle_expired: the reservation expired and was released already;
      -- the spend is billed and the call counts, in the period it ends in.
      roll(c, start)
      c.spend_microusd = c.spend_microusd + cost
      c.requests = c.requests + 1
    end
    redis.call('SET', KEYS[4], encode(c))
  end
  return 1
end

return redis.error_reply('unknown mode')
