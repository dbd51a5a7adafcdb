"""Where the Redis engine keeps what: every key name, made here and nowhere else.

Users are spread over :data:`BUCKETS` buckets by a hash of their id. Each
bucket's keys share one Redis hash tag (the ``{...}`` part of a key name), so
they live in one hash slot of a Redis Cluster, and every script for one user
touches that slot alone. Under a prefix ``P`` and a bucket tag ``T``:

* ``P{T}:user:{json user id}``: the user's values, a hash of field (the JSON key
  name) to record (see :mod:`dash_database.serialization`);
* ``P{T}:users``: the bucket's users holding at least one value, each mapped to
  its stored bytes, plus the field ``""`` (never a JSON id) for the bucket's total;
* ``P{T}:seen``: the bucket's users by last activity, a sorted set;
* ``P{T}:chunk:{version}:{n}``: the chunks of values larger than one chunk;
* ``Playout``: ``{version}:{buckets}``, the layout's version and bucket count,
  written once per store.

The tags are chosen so that the buckets' slots are spread evenly over the 16,384
slots, hence over a cluster's nodes (which own ranges of slots). A prefix that
holds a hash tag of its own puts every key in that one slot.
"""

from __future__ import annotations

import binascii
import zlib

#: The layout this engine writes; stores of 2.x have the flat one (see :mod:`.migration`).
VERSION = 3
#: Buckets per store. Every bucket is read to list users or sum the store's bytes.
BUCKETS = 16
#: The most buckets a store may declare (its layout key is read back, hence untrusted).
MAX_BUCKETS = 1024
#: The hash slots of Redis Cluster.
SLOTS = 16_384
#: The field of a bucket's users hash holding the bucket's total stored bytes.
TOTAL = ""


def slot(key: bytes) -> int:
    """The Redis Cluster hash slot of ``key`` (CRC16-XMODEM of its hash tag, or of itself)."""
    start = key.find(b"{")
    if start != -1:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            key = key[start + 1 : end]
    return binascii.crc_hqx(key, 0) % SLOTS


def bucket_tags(buckets: int) -> list[str]:
    """One hash tag per bucket, the ``n``-th in the ``n``-th of ``buckets`` equal slot ranges:
    the first of ``"0"``, ``"1"``, ... that falls in it."""
    tags: list[str] = []
    candidate = 0
    for index in range(buckets):
        while slot(str(candidate).encode()) * buckets // SLOTS != index:
            candidate += 1
        tags.append(str(candidate))
        candidate = 0
    return tags


class Layout:
    """The key names of one store.

    :param prefix: the app's key prefix.
    :param buckets: the store's bucket count (from its ``layout`` key).
    """

    def __init__(self, prefix: str, buckets: int = BUCKETS) -> None:
        self.prefix, self.buckets = prefix, buckets
        #: The start of every key of each bucket, its hash tag included.
        self.bases = [f"{prefix}{{{tag}}}:" for tag in bucket_tags(buckets)]
        #: The layout key: ``{version}:{buckets}``.
        self.marker = f"{prefix}layout"
        #: Each bucket's users hash and activity set, bucket by bucket.
        self.users = [f"{base}users" for base in self.bases]
        self.seen = [f"{base}seen" for base in self.bases]

    def bucket(self, member: str) -> int:
        """The bucket of the user whose JSON id is ``member``."""
        return zlib.crc32(member.encode()) % self.buckets

    def base(self, member: str) -> str:
        """The start of every key of the user's bucket, its hash tag included."""
        return self.bases[self.bucket(member)]

    def values(self, member: str) -> str:
        """The user's hash of values."""
        return f"{self.base(member)}user:{member}"

    def user_keys(self, member: str) -> list[str]:
        """The keys every per-user script is given first: values, users hash, activity."""
        index = self.bucket(member)
        return [f"{self.bases[index]}user:{member}", self.users[index], self.seen[index]]

    def chunk(self, member: str, version: str, index: int) -> str:
        """The ``index``-th chunk of the value ``version`` of the user."""
        return f"{self.base(member)}chunk:{version}:{index}"

    def chunks(self, member: str, version: str, count: int) -> list[str]:
        """Every chunk of the value ``version`` (of ``count`` chunks) of the user."""
        base = self.base(member)
        return [f"{base}chunk:{version}:{index}" for index in range(count)]
