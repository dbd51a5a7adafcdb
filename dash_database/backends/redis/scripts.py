"""The Lua scripts of the Redis engine: every write is one script, hence atomic.

A record read back from the server is untrusted: any client of the server
may have written it. The scripts follow a chunked record's references only
if this library could have made them (a 32-hex-digit version and a count of
at most :data:`MAX_CHUNKS`) and its last chunk exists, so a crafted count
cannot make the server loop for long; a damaged record is deleted alone.
"""

from __future__ import annotations

from ...records import HEADER_TAGS, lua_body_start, lua_is_chunked

#: The most chunks one value may have: 512 GiB at the default chunk size,
#: more than a Redis server holds, and a loop the server runs in milliseconds.
MAX_CHUNKS = 65_536

# Lua helpers shared by the scripts. KEYS[1] is the user's hash and ARGV[1] the
# key prefix, from which the scripts name the users set, the seen zset and the
# counters: the bytes hash (user member -> stored bytes) and the totals hash
# (keys, bytes, and "counted" once they are built). Few arguments on purpose:
# redis-py packs each one in Python, about 3 us apiece.
_HELPERS = f"""
local USERS, SEEN = ARGV[1] .. 'users', ARGV[1] .. 'seen'
local BYTES, TOTALS = ARGV[1] .. 'bytes', ARGV[1] .. 'totals'
local function refs(record)
  if not record or #record < 2 or not ({lua_is_chunked("record")}) then return nil end
  local version, count =
    string.match(string.sub(record, {lua_body_start("record")}), '^([0-9a-f]+):([0-9]+)$')
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
local function stored_size(record)
  local version, count = refs(record)
  if not version then return #record end
  local size = {lua_body_start("record")} - 1
  for _, key in ipairs(chunk_keys(version, count)) do size = size + redis.call('STRLEN', key) end
  return size
end
local function count(member, keys, bytes, gone)
  if gone then redis.call('HDEL', BYTES, member)
  elseif bytes ~= 0 then redis.call('HINCRBY', BYTES, member, bytes) end
  if keys ~= 0 then redis.call('HINCRBY', TOTALS, 'keys', keys) end
  if bytes ~= 0 then redis.call('HINCRBY', TOTALS, 'bytes', bytes) end
end
local function drop_user(member)
  local records = redis.call('HVALS', KEYS[1])
  for _, record in ipairs(records) do
    for _, key in ipairs(stored_chunks(record)) do redis.call('DEL', key) end
  end
  local bytes = tonumber(redis.call('HGET', BYTES, member) or '0')
  redis.call('DEL', KEYS[1])
  redis.call('SREM', USERS, member)
  redis.call('ZREM', SEEN, member)
  count(member, -#records, -bytes, true)
  return #records
end
local function touch(member, text)
  if text == '' then return nil end
  local now, refresh, drop, create = string.match(text, '^([^:]*):([^:]*):([^:]*):([01])$')
  local seen = redis.call('ZSCORE', SEEN, member)
  seen = seen and tonumber(seen)
  if seen and drop ~= '' and seen < tonumber(drop) then
    drop_user(member)
    seen = nil
  end
  if not seen then
    if create == '1' then return now end
    return nil
  end
  if refresh == '' or seen < tonumber(refresh) then return now end
  return nil
end
local function mark(member, now)
  if now then redis.call('ZADD', SEEN, 'GT', now, member) end
end
"""

# A touch (dash_database.activity.Touch) is the activity a call records in the
# same script, one argument "now:refresh_before:drop_before:create" (empty
# fields: always refresh, no expiry); an empty argument: no touch. touch()
# follows Touch.outcome: it drops an idle user first, and returns the time that
# mark() records, never moving the stored one back (ZADD GT), once the call
# succeeds: a refused write records none.

# KEYS: user hash. ARGV: prefix, field, record, user member, touch, and
# "grace:size:max_keys:max_user_bytes:max_total_bytes" (a limit of 0: none), then
# for a compare-and-set: "absent", or "equal" and the record it must hold.
# Returns 1 when stored, 0 when the compare-and-set found another record, and
# "n:figure" when limit n would be passed (see dash_database.quotas).
SET = (
    _HELPERS
    + """
local now = touch(ARGV[4], ARGV[5])
local grace, size, max_keys, max_user, max_total =
  string.match(ARGV[6], '^(%d+):(%d+):(%d+):(%d+):(%d+)$')
size, max_keys, max_user, max_total =
  tonumber(size), tonumber(max_keys), tonumber(max_user), tonumber(max_total)
local old = redis.call('HGET', KEYS[1], ARGV[2])
if (ARGV[7] == 'absent' and old) or (ARGV[7] == 'equal' and old ~= ARGV[8]) then
  return 0
end
local old_size = 0
if old then old_size = stored_size(old) end
if max_keys > 0 and not old then
  local keys = redis.call('HLEN', KEYS[1])
  if keys + 1 > max_keys then return '1:' .. keys end
end
if max_user > 0 then
  local after = tonumber(redis.call('HGET', BYTES, ARGV[4]) or '0') - old_size + size
  if after > max_user then return '2:' .. after end
end
if max_total > 0 then
  local after = tonumber(redis.call('HGET', TOTALS, 'bytes') or '0') - old_size + size
  if after > max_total then return '3:' .. after end
end
local new = {}
local version, chunks = refs(ARGV[3])
if version then new = chunk_keys(version, chunks) end
for _, key in ipairs(new) do
  if redis.call('EXISTS', key) == 0 then
    return redis.error_reply('DASHDB a chunk of the value expired before it was committed')
  end
end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
if not old then redis.call('SADD', USERS, ARGV[4]) end
for _, key in ipairs(new) do redis.call('PERSIST', key) end
if old and old ~= ARGV[3] then
  for _, key in ipairs(stored_chunks(old)) do redis.call('EXPIRE', key, grace) end
end
local added = 1
if old then added = 0 end
count(ARGV[4], added, size - old_size, false)
mark(ARGV[4], now)
return 1
"""
)

# KEYS: user hash. ARGV: prefix, field, user member, touch. One round trip for
# a read and its activity.
# Returns the record (false: none) and the user's stored activity (false: none).
GET = _HELPERS + (
    "mark(ARGV[3], touch(ARGV[3], ARGV[4]))\n"
    "return {redis.call('HGET', KEYS[1], ARGV[2]), redis.call('ZSCORE', SEEN, ARGV[3])}\n"
)

# KEYS: user hash. ARGV: prefix, user member, touch. The touch alone (before a call
# that needs no script); returns the user's stored activity (false: none).
TOUCH = _HELPERS + (
    "mark(ARGV[2], touch(ARGV[2], ARGV[3]))\nreturn redis.call('ZSCORE', SEEN, ARGV[2])\n"
)

# KEYS: user hash. ARGV: prefix, field, user member.
DELETE = (
    _HELPERS
    + """
local old = redis.call('HGET', KEYS[1], ARGV[2])
if not old then return 0 end
local size = stored_size(old)
redis.call('HDEL', KEYS[1], ARGV[2])
for _, key in ipairs(stored_chunks(old)) do redis.call('DEL', key) end
local gone = redis.call('HLEN', KEYS[1]) == 0
if gone then redis.call('SREM', USERS, ARGV[3]) end
count(ARGV[3], -1, -size, gone)
return 1
"""
)

_HAS_HEADER = " or ".join(f"string.byte(record, 1) == {tag[0]}" for tag in HEADER_TAGS)

# Rebinding signed records (see .renaming): ARGV from ``first`` on holds field,
# old head, new head of each record; a record is given its new head only if it
# still starts with the old one (a write may have replaced it meanwhile).
_REHEAD = """
local function rehead(first)
  for i = first, #ARGV, 3 do
    local record = redis.call('HGET', KEYS[1], ARGV[i])
    if record and string.sub(record, 1, #ARGV[i + 1]) == ARGV[i + 1] then
      redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 2] .. string.sub(record, #ARGV[i + 1] + 1))
    end
  end
end
"""

# KEYS: user hash. Returns field, start, field, start... of the records with a
# header: what a rename rebinds (in the process, which holds the key).
HEADS = f"""
local out = {{}}
local flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do
  local record = flat[i + 1]
  if {_HAS_HEADER} then out[#out + 1] = flat[i]; out[#out + 1] = string.sub(record, 1, 256) end
end
return out
"""

# KEYS: user hash. ARGV: field, old head, new head of each record to rebind.
REHEAD = _REHEAD + "rehead(1)\n"

# KEYS: old hash, new hash, users set, seen zset, bytes hash. ARGV: prefix,
# old member, new member, then field, old head, new head of each record to
# rebind. The hash is renamed, so its records (and the chunks they name) move
# as they are, and so does the user's byte counter. Returns -1 if the new user
# has values.
RENAME_USER = (
    _REHEAD
    + """
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
rehead(4)
local moved = redis.call('HLEN', KEYS[1])
redis.call('HDEL', KEYS[5], ARGV[3])
if moved > 0 then
  redis.call('RENAME', KEYS[1], KEYS[2])
  redis.call('SREM', KEYS[3], ARGV[2])
  redis.call('SADD', KEYS[3], ARGV[3])
  local bytes = redis.call('HGET', KEYS[5], ARGV[2])
  redis.call('HDEL', KEYS[5], ARGV[2])
  if bytes then redis.call('HSET', KEYS[5], ARGV[3], bytes) end
end
redis.call('ZREM', KEYS[4], ARGV[3])
local seen = redis.call('ZSCORE', KEYS[4], ARGV[2])
if seen then
  redis.call('ZREM', KEYS[4], ARGV[2])
  redis.call('ZADD', KEYS[4], seen, ARGV[3])
end
return moved
"""
)

# KEYS: user hash. ARGV: prefix, user member.
DELETE_USER = _HELPERS + "return drop_user(ARGV[2])\n"

# KEYS: as DELETE_USER. ARGV: prefix, user member, cutoff.
# The idle check and the delete run as one script, so a write racing from
# another process either comes first (and saves the user) or finds it gone.
DELETE_IDLE = (
    _HELPERS
    + """
local seen = redis.call('ZSCORE', SEEN, ARGV[2])
if not seen or tonumber(seen) >= tonumber(ARGV[3]) then return 0 end
drop_user(ARGV[2])
return 1
"""
)

# Building the counters of a store written before them, once. The user's
# counter is recounted from its hash in one script, so a write racing with it
# comes entirely before or after; the totals are summed last, the same way.
# KEYS: user hash. ARGV: prefix, user member.
RECOUNT_USER = (
    _HELPERS
    + """
local records = redis.call('HVALS', KEYS[1])
local size = 0
for _, record in ipairs(records) do size = size + stored_size(record) end
if #records > 0 then redis.call('HSET', BYTES, ARGV[2], size)
else redis.call('HDEL', BYTES, ARGV[2]) end
return #records
"""
)
# KEYS: -, users set, -, bytes hash, totals hash. ARGV: prefix.
RECOUNT_TOTALS = """
local keys, bytes = 0, 0
for _, member in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  keys = keys + redis.call('HLEN', ARGV[1] .. 'user:' .. member)
end
for _, size in ipairs(redis.call('HVALS', KEYS[4])) do bytes = bytes + tonumber(size) end
redis.call('HSET', KEYS[5], 'keys', keys, 'bytes', bytes, 'counted', 1)
return keys
"""
