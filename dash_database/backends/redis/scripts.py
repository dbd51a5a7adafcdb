"""The Lua scripts of the Redis engine: every write is one script, hence atomic.

Every key a script touches is given to it in ``KEYS`` (see :mod:`.layout` for
the names), as Redis Cluster requires: a per-user script gets the user's values
hash, its bucket's users hash and activity set, then the chunk keys it may need.
Which chunks a stored record names is known only once the script reads it; a
script that meets a chunked record whose chunks it was not given changes
nothing and answers :data:`NEED_CHUNKS`, and the engine runs it again with them
(see :meth:`.chunks.Chunks.declared`): a rare second round trip, for users
holding values of more than one chunk.

A record read back from the server is untrusted: any client of the server
may have written it. The scripts follow a chunked record's references only
if this library could have made them (a 32-hex-digit version and a count of
at most :data:`MAX_CHUNKS`) and its last chunk exists, so a crafted count
cannot make the server loop for long; a damaged record is deleted alone.
"""

from __future__ import annotations

from ...records import HEADER_TAGS, lua_body_start, lua_is_chunked
from ..chunk_reads import MAX_CHUNKS
from .layout import TOTAL

#: A script's answer when it needs the chunk keys of the user's records.
NEED_CHUNKS = b"C"

# The references of a chunked record ("{version}:{count}" after its head), or nil.
_REFS = f"""
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
"""

# Helpers of the per-user scripts. VALUES, USERS and SEEN are the user's values
# hash, its bucket's users hash (member -> stored bytes, and TOTAL -> the
# bucket's) and activity set; KEYS[FIRST..LAST] are the chunk keys the caller
# declared. A script changes them before its first call if its KEYS differ.
# MEMBER, the user's JSON id, ends the name of its values hash (see .layout):
# one argument fewer to send on every call.
_USER = (
    _REFS
    + f"""
local VALUES, USERS, SEEN = KEYS[1], KEYS[2], KEYS[3]
local MEMBER = string.sub(VALUES, #USERS + 1)
local FIRST, LAST = 4, #KEYS
local TOTAL = '{TOTAL}'
local declared = nil
local function chunk_key(version, index)
  return string.sub(USERS, 1, -6) .. 'chunk:' .. version .. ':' .. index
end
-- The chunk keys that a stored record names: none if it is inline, or damaged
-- (its last chunk is gone); nil if the caller did not declare them.
local function chunks_of(record)
  local version, count = refs(record)
  if not version then return {{}} end
  if not declared then
    declared = {{}}
    for i = FIRST, LAST do declared[KEYS[i]] = true end
  end
  local last = chunk_key(version, count - 1)
  if not declared[last] then return nil end
  if redis.call('EXISTS', last) == 0 then return {{}} end
  local keys = {{}}
  for i = 0, count - 1 do
    local key = chunk_key(version, i)
    if not declared[key] then return nil end
    keys[#keys + 1] = key
  end
  return keys
end
local function stored_size(record, chunks)
  if #chunks == 0 then return #record end
  local size = {lua_body_start("record")} - 1
  for _, key in ipairs(chunks) do size = size + redis.call('STRLEN', key) end
  return size
end
local function count(member, delta, gone)
  if gone then redis.call('HDEL', USERS, member)
  elseif delta ~= 0 then redis.call('HINCRBY', USERS, member, delta) end
  if delta ~= 0 then redis.call('HINCRBY', USERS, TOTAL, delta) end
end
-- Deletes the user; its value count, or nil (nothing done) without its chunks.
local function drop_user(member)
  local records = redis.call('HVALS', VALUES)
  local doomed = {{}}
  for _, record in ipairs(records) do
    local chunks = chunks_of(record)
    if not chunks then return nil end
    for _, key in ipairs(chunks) do doomed[#doomed + 1] = key end
  end
  for _, key in ipairs(doomed) do redis.call('DEL', key) end
  local bytes = tonumber(redis.call('HGET', USERS, member) or '0')
  redis.call('DEL', VALUES)
  redis.call('ZREM', SEEN, member)
  count(member, -bytes, true)
  return #records
end
-- The time to record (nil: none), and true if the chunks were needed.
local function touch(member, text)
  if text == '' then return nil end
  local now, refresh, drop, create = string.match(text, '^([^:]*):([^:]*):([^:]*):([01])$')
  -- A write without expiry records now whatever is stored (mark keeps the later time).
  if create == '1' and refresh == '' and drop == '' then return now end
  local seen = redis.call('ZSCORE', SEEN, member)
  seen = seen and tonumber(seen)
  if seen and drop ~= '' and seen < tonumber(drop) then
    if not drop_user(member) then return nil, true end
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
)

# A touch (dash_database.activity.Touch) is the activity a call records in the
# same script, one argument "now:refresh_before:drop_before:create" (empty
# fields: always refresh, no expiry); an empty argument: no touch. touch()
# follows Touch.outcome: it drops an idle user first, and returns the time that
# mark() records, never moving the stored one back (ZADD GT), once the call
# succeeds: a refused write records none.

# KEYS: values, users, seen; with max_total_bytes, every bucket's users hash;
# then the new record's chunks (and the user's, once NEED_CHUNKS was answered).
# ARGV: field, record, touch, and
# "grace:size:max_keys:max_user_bytes:max_total_bytes:buckets" (a limit of 0:
# none; buckets: how many users hashes follow SEEN), then for a compare-and-set:
# "absent", or "equal" and the record it must hold.
# Returns 1 when stored, 0 when the compare-and-set found another record,
# "n:figure" when limit n would be passed (see dash_database.quotas), or NEED_CHUNKS.
SET = (
    _USER
    + """
local grace, size, max_keys, max_user, max_total, buckets =
  string.match(ARGV[4], '^(%d+):(%d+):(%d+):(%d+):(%d+):(%d+)$')
size, max_keys, max_user, max_total =
  tonumber(size), tonumber(max_keys), tonumber(max_user), tonumber(max_total)
FIRST = 4 + tonumber(buckets)
local now, needed = touch(MEMBER, ARGV[3])
if needed then return 'C' end
local old = redis.call('HGET', VALUES, ARGV[1])
if (ARGV[5] == 'absent' and old) or (ARGV[5] == 'equal' and old ~= ARGV[6]) then
  return 0
end
local old_chunks, old_size = {}, 0
if old then
  old_chunks = chunks_of(old)
  if not old_chunks then return 'C' end
  old_size = stored_size(old, old_chunks)
end
if max_keys > 0 and not old then
  local keys = redis.call('HLEN', VALUES)
  if keys + 1 > max_keys then return '1:' .. keys end
end
if max_user > 0 then
  local after = tonumber(redis.call('HGET', USERS, MEMBER) or '0') - old_size + size
  if after > max_user then return '2:' .. after end
end
if max_total > 0 then
  local total = 0
  for i = 4, FIRST - 1 do total = total + tonumber(redis.call('HGET', KEYS[i], TOTAL) or '0') end
  local after = total - old_size + size
  if after > max_total then return '3:' .. after end
end
local new = {}
local version, chunks = refs(ARGV[2])
if version then
  for i = 0, chunks - 1 do
    new[#new + 1] = chunk_key(version, i)
    if redis.call('EXISTS', new[#new]) == 0 then
      return redis.error_reply('DASHDB a chunk of the value was gone before it was committed ' ..
        '(it expired, or the server evicted it: see maxmemory-policy); nothing was stored')
    end
  end
end
redis.call('HSET', VALUES, ARGV[1], ARGV[2])
for _, key in ipairs(new) do redis.call('PERSIST', key) end
for _, key in ipairs(old_chunks) do redis.call('EXPIRE', key, grace) end
count(MEMBER, size - old_size, false)
mark(MEMBER, now)
return 1
"""
)

# KEYS: values, users, seen, chunks. ARGV: field, touch. One round trip for a
# read and its activity.
# Returns the record (false: none) and the user's stored activity (false: none).
GET = _USER + (
    "local now, needed = touch(MEMBER, ARGV[2])\n"
    "if needed then return 'C' end\n"
    "mark(MEMBER, now)\n"
    "return {redis.call('HGET', VALUES, ARGV[1]), redis.call('ZSCORE', SEEN, MEMBER)}\n"
)

# KEYS: values, users, seen, chunks. ARGV: touch. The touch alone
# (before a call that needs no script); returns the user's stored activity
# (false: none).
TOUCH = _USER + (
    "local now, needed = touch(MEMBER, ARGV[1])\n"
    "if needed then return 'C' end\n"
    "mark(MEMBER, now)\n"
    "return redis.call('ZSCORE', SEEN, MEMBER)\n"
)

# KEYS: values, users, seen, chunks. ARGV: field.
DELETE = (
    _USER
    + """
local old = redis.call('HGET', VALUES, ARGV[1])
if not old then return 0 end
local chunks = chunks_of(old)
if not chunks then return 'C' end
local size = stored_size(old, chunks)
redis.call('HDEL', VALUES, ARGV[1])
for _, key in ipairs(chunks) do redis.call('DEL', key) end
count(MEMBER, -size, redis.call('EXISTS', VALUES) == 0)
return 1
"""
)

# KEYS: values, users, seen, chunks.
DELETE_USER = _USER + (
    "local deleted = drop_user(MEMBER)\nif not deleted then return 'C' end\nreturn deleted\n"
)

# KEYS: as DELETE_USER. ARGV: cutoff.
# The idle check and the delete run as one script, so a write racing from
# another process either comes first (and saves the user) or finds it gone.
DELETE_IDLE = (
    _USER
    + """
local seen = redis.call('ZSCORE', SEEN, MEMBER)
if not seen or tonumber(seen) >= tonumber(ARGV[1]) then return 0 end
if not drop_user(MEMBER) then return 'C' end
return 1
"""
)

# KEYS: values, users, seen, chunks. The user's byte count set from its records, and its
# bucket's total moved by as much. Returns the user's bytes, or NEED_CHUNKS.
RECOUNT_USER = (
    _USER
    + """
local records = redis.call('HVALS', VALUES)
local bytes = 0
for _, record in ipairs(records) do
  local chunks = chunks_of(record)
  if not chunks then return 'C' end
  bytes = bytes + stored_size(record, chunks)
end
local old = tonumber(redis.call('HGET', USERS, MEMBER) or '0')
if #records > 0 then redis.call('HSET', USERS, MEMBER, bytes)
else redis.call('HDEL', USERS, MEMBER) end
if bytes ~= old then redis.call('HINCRBY', USERS, TOTAL, bytes - old) end
return bytes
"""
)

# KEYS: a bucket's users hash. Its total set to the sum of its users' bytes.
RECOUNT_TOTAL = f"""
local total = 0
local flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do
  if flat[i] ~= '{TOTAL}' then total = total + tonumber(flat[i + 1]) end
end
redis.call('HSET', KEYS[1], '{TOTAL}', total)
return total
"""

# KEYS: a values hash. The references of its chunked records, "{version}:{count}"
# each: what a script answering NEED_CHUNKS needs.
REFS = (
    _REFS
    + """
local out = {}
for _, record in ipairs(redis.call('HVALS', KEYS[1])) do
  local version, count = refs(record)
  if version then out[#out + 1] = version .. ':' .. count end
end
return out
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

# KEYS: values hash. Returns field, start, field, start... of the records with a
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

# KEYS: values hash. ARGV: field, old head, new head of each record to rebind.
REHEAD = _REHEAD + "rehead(1)\n"

# Moving a user's values hash, chunks and byte count to another name: a rename,
# and the upgrade from the flat layout of 2.x (see .migration). Each script then
# moves the user's activity its own way.
# KEYS: old values, old users, old seen, new values, new users, new seen, then n
# old chunk keys and the n new names of the same chunks. ARGV: old member, new
# member, n, then field, old head, new head of each record to rebind. The old
# users and seen keys may be a users set and seen set of the flat layout, whose
# byte counts were in a separate hash (then no records to rebind).
# Returns the values moved, -1 if the new user has values, or NEED_CHUNKS.
_MOVE = """
local function move(chunk_pairs, first_rebind)
  local bytes = 0
  for _, record in ipairs(redis.call('HVALS', VALUES)) do
    local chunks = chunks_of(record)
    if not chunks then return 'C' end
    bytes = bytes + stored_size(record, chunks)
  end
  if first_rebind then rehead(first_rebind) end
  local moved = redis.call('HLEN', VALUES)
  if moved > 0 then
    redis.call('RENAME', VALUES, KEYS[4])
    for i = 1, chunk_pairs do
      local old, new = KEYS[6 + i], KEYS[6 + chunk_pairs + i]
      if old ~= new and redis.call('EXISTS', old) == 1 then redis.call('RENAME', old, new) end
    end
    redis.call('HINCRBY', KEYS[5], ARGV[2], bytes)
    redis.call('HINCRBY', KEYS[5], TOTAL, bytes)
  end
  return moved
end
"""

RENAME_USER = (
    _USER
    + _REHEAD
    + _MOVE
    + """
VALUES, USERS, SEEN, FIRST, LAST = KEYS[1], KEYS[2], KEYS[3], 7, 6 + tonumber(ARGV[3])
if redis.call('EXISTS', KEYS[4]) == 1 then return -1 end
local bytes = tonumber(redis.call('HGET', USERS, ARGV[1]) or '0')
local moved = move(tonumber(ARGV[3]), 4)
if moved == 'C' then return moved end
count(ARGV[1], -bytes, true)
redis.call('ZREM', KEYS[6], ARGV[2])
local seen = redis.call('ZSCORE', SEEN, ARGV[1])
if seen then
  redis.call('ZREM', SEEN, ARGV[1])
  redis.call('ZADD', KEYS[6], seen, ARGV[2])
end
return moved
"""
)

# KEYS: as RENAME_USER, the old ones those of the flat layout (see .migration);
# then the flat layout's bytes hash. ARGV: member (the same on both sides), n.
UPGRADE_USER = (
    _USER
    + _MOVE
    + """
local n = tonumber(ARGV[3])
VALUES, USERS, SEEN, FIRST, LAST = KEYS[1], KEYS[2], KEYS[3], 7, 6 + n
-- Another process may have moved this user already: then nothing is left here.
if redis.call('EXISTS', VALUES) == 1 and redis.call('EXISTS', KEYS[4]) == 1 then return -1 end
local moved = move(n, nil)
if moved == 'C' then return moved end
redis.call('SREM', USERS, ARGV[1])
redis.call('HDEL', KEYS[7 + 2 * n], ARGV[1])
local seen = redis.call('ZSCORE', SEEN, ARGV[1])
if seen then
  redis.call('ZREM', SEEN, ARGV[1])
  redis.call('ZADD', KEYS[6], 'GT', seen, ARGV[2])
end
return moved
"""
)
