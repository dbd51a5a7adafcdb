"""The Lua scripts of the Redis engine: every write is one script, hence atomic.

A record read back from the server is untrusted: any client of the server
may have written it. The scripts follow a chunked record's references only
if this library could have made them (a 32-hex-digit version and a count of
at most :data:`MAX_CHUNKS`) and its last chunk exists, so a crafted count
cannot make the server loop for long; a damaged record is deleted alone.
"""

from __future__ import annotations

from ...serialization import lua_is_chunked

#: The most chunks one value may have: 512 GiB at the default chunk size,
#: more than a Redis server holds, and a loop the server runs in milliseconds.
MAX_CHUNKS = 65_536

# Lua helpers shared by the scripts. ARGV[1] is always the key prefix.
_HELPERS = f"""
local function refs(record)
  if not record or #record < 2 or not ({lua_is_chunked("record")}) then return nil end
  local version, count = string.match(string.sub(record, 2), '^([0-9a-f]+):([0-9]+)$')
  count = tonumber(count)
  if not version or #version ~= 32 or not count or count < 1 or count > {MAX_CHUNKS} then
    return nil
  end
  return version, count
end
local function chunk_keys(version, count)
  local keys = {{}}
  for i = 0, count - 1 do keys[#keys + 1] = ARGV[1] .. 'chunk:' .. version .. ':' .. i end
  return keys
end
local function stored_chunks(record)
  local version, count = refs(record)
  if not version then return {{}} end
  if redis.call('EXISTS', ARGV[1] .. 'chunk:' .. version .. ':' .. (count - 1)) == 0 then
    return {{}}
  end
  return chunk_keys(version, count)
end
"""

# KEYS: user hash, users set. ARGV: prefix, field, record, user member, grace,
# and for a compare-and-set: "absent", or "equal" and the record it must hold.
# Returns 1 when stored, 0 when the compare-and-set found another record.
SET = (
    _HELPERS
    + """
local old = redis.call('HGET', KEYS[1], ARGV[2])
if (ARGV[6] == 'absent' and old) or (ARGV[6] == 'equal' and old ~= ARGV[7]) then
  return 0
end
local new = {}
local version, count = refs(ARGV[3])
if version then new = chunk_keys(version, count) end
for _, key in ipairs(new) do
  if redis.call('EXISTS', key) == 0 then
    return redis.error_reply('DASHDB a chunk of the value expired before it was committed')
  end
end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
redis.call('SADD', KEYS[2], ARGV[4])
for _, key in ipairs(new) do redis.call('PERSIST', key) end
if old ~= ARGV[3] then
  for _, key in ipairs(stored_chunks(old)) do redis.call('EXPIRE', key, ARGV[5]) end
end
return 1
"""
)

# KEYS: user hash, users set. ARGV: prefix, field, user member.
DELETE = (
    _HELPERS
    + """
local old = redis.call('HGET', KEYS[1], ARGV[2])
if not old then return 0 end
redis.call('HDEL', KEYS[1], ARGV[2])
for _, key in ipairs(stored_chunks(old)) do redis.call('DEL', key) end
if redis.call('HLEN', KEYS[1]) == 0 then redis.call('SREM', KEYS[2], ARGV[3]) end
return 1
"""
)

# Deletes the user of KEYS[1..3] (hash, users set, seen zset), ARGV[2] its member.
_DROP_USER = """
local records = redis.call('HVALS', KEYS[1])
for _, record in ipairs(records) do
  for _, key in ipairs(stored_chunks(record)) do redis.call('DEL', key) end
end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[2])
redis.call('ZREM', KEYS[3], ARGV[2])
"""

# KEYS: old hash, new hash, users set, seen zset. ARGV: prefix, old member, new member.
# The hash is renamed, so its records (and the chunks they name) move as they are.
RENAME_USER = """
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
local moved = redis.call('HLEN', KEYS[1])
if moved > 0 then
  redis.call('RENAME', KEYS[1], KEYS[2])
  redis.call('SREM', KEYS[3], ARGV[2])
  redis.call('SADD', KEYS[3], ARGV[3])
end
redis.call('ZREM', KEYS[4], ARGV[3])
local seen = redis.call('ZSCORE', KEYS[4], ARGV[2])
if seen then
  redis.call('ZREM', KEYS[4], ARGV[2])
  redis.call('ZADD', KEYS[4], seen, ARGV[3])
end
return moved
"""

# KEYS: user hash, users set, seen zset. ARGV: prefix, user member.
DELETE_USER = _HELPERS + _DROP_USER + "return #records\n"

# KEYS: user hash, users set, seen zset. ARGV: prefix, user member, cutoff.
# The idle check and the delete run as one script, so a write racing from
# another process either comes first (and saves the user) or finds it gone.
DELETE_IDLE = (
    _HELPERS
    + """
local seen = redis.call('ZSCORE', KEYS[3], ARGV[2])
if not seen or tonumber(seen) >= tonumber(ARGV[3]) then return 0 end
"""
    + _DROP_USER
    + "return 1\n"
)
