"""Sessions over time: sliding expiry, purging, touch, stats and quotas, on every backend."""

from __future__ import annotations

import datetime

import pytest

from dash_database import DashDatabase
from dash_database.activity import MAX_REFRESH_SECONDS, PURGE_BATCH, REFRESH_FRACTION
from dash_database.exceptions import QuotaExceededError

from helpers import Clock, OpenDb

EXPIRE = 1600.0  # seconds; activity is recorded at most every min(EXPIRE / 16, 60 s)
REFRESH = min(EXPIRE * REFRESH_FRACTION, MAX_REFRESH_SECONDS)
GONE = EXPIRE + REFRESH + 1  # idle this long: certainly expired


@pytest.fixture
def expiring(open_db: OpenDb, clock: Clock) -> DashDatabase:
    """A database of the backend under test whose users expire after EXPIRE idle seconds."""
    return open_db(expire_after=EXPIRE)


def test_idle_user_is_invisible_to_every_method(expiring: DashDatabase, clock: Clock) -> None:
    """Past expire_after without activity, a user's values are gone for every method."""
    expiring.store_user_value("idle", "a", 1)
    expiring.store_user_value("live", "a", 2)
    clock.advance(EXPIRE - 1)
    expiring.touch("live")
    clock.advance(REFRESH + 2)  # "idle" is now past expiry, "live" is not
    assert expiring.list_users() == ["live"]
    assert expiring.stats().users == 1
    assert expiring.user_stats("idle").keys == 0
    assert expiring.get_user_value("idle", "a") is None
    assert expiring.list_stored_user_keys("idle") == []
    assert "a" not in expiring.user("idle")
    assert len(expiring.user("idle")) == 0
    assert expiring.get_user_value("live", "a") == 2


def test_a_rename_treats_expired_users_as_gone(expiring: DashDatabase, clock: Clock) -> None:
    """An expired id is free to rename onto, and an expired user moves nothing."""
    expiring.store_user_value("taken-long-ago", "a", 1)
    expiring.store_user_value("gone", "b", 2)
    clock.advance(EXPIRE - 1)
    expiring.store_user_value("guest", "c", 3)
    clock.advance(REFRESH + 2)  # the first two expired; no call since has purged them
    assert expiring.rename_user("guest", "taken-long-ago") == 1
    assert expiring.rename_user("gone", "new") == 0
    assert expiring.get_user_value("taken-long-ago", "c") == 3
    assert expiring.get_user_value("taken-long-ago", "a") is None
    assert expiring.list_users() == ["taken-long-ago"]


def test_expiry_never_comes_early(expiring: DashDatabase, clock: Clock) -> None:
    """A user idle for just under expire_after keeps every value."""
    expiring.store_user_value("u", "a", 1)
    clock.advance(EXPIRE - 0.001)
    assert expiring.get_user_value("u", "a") == 1


@pytest.mark.parametrize(
    "activity",
    [
        lambda db: db.get_user_value("u", "a"),
        lambda db: db.store_user_value("u", "b", 2),
        lambda db: db.list_stored_user_keys("u"),
        lambda db: db.user("u")["a"],
        lambda db: db.touch("u"),
        lambda db: db.update_user_value("u", "n", lambda n: n + 1, default=0),
    ],
    ids=["get", "store", "list", "view", "touch", "update"],
)
def test_reads_and_writes_keep_a_session_alive(
    expiring: DashDatabase, clock: Clock, activity: object
) -> None:
    """Reads count as activity (not only writes), and so does touch()."""
    expiring.store_user_value("u", "a", 1)
    for _ in range(5):  # 5 x (EXPIRE - 1) idle in total, but never EXPIRE in a row
        clock.advance(EXPIRE - 1)
        activity(expiring)  # type: ignore[operator]
    clock.advance(EXPIRE - 1)
    assert expiring.get_user_value("u", "a") == 1


def test_touch_extends_without_creating(expiring: DashDatabase, clock: Clock) -> None:
    """touch() on an unknown user records nothing; on a user it moves last activity."""
    expiring.touch("nobody")
    assert expiring.user_stats("nobody").last_activity is None
    expiring.store_user_value("u", "a", 1)
    clock.advance(500)
    expiring.touch("u")
    assert expiring.user_stats("u").last_activity == clock.now


def test_purge_expired_counts_and_reclaims(expiring: DashDatabase, clock: Clock) -> None:
    """purge_expired() removes every idle user, returns how many, and spares live ones."""
    for n in range(25):
        expiring.store_user_value(f"old{n}", "a", n)
    clock.advance(GONE)
    expiring.store_user_value("new", "a", 1)  # runs one bounded background batch
    assert expiring.purge_expired() == 25 - PURGE_BATCH
    assert expiring.purge_expired() == 0
    assert expiring.list_users() == ["new"]
    assert expiring.stats().keys == 1


def test_background_purging_is_bounded(expiring: DashDatabase, clock: Clock) -> None:
    """Normal calls purge at most PURGE_BATCH users, at most once per refresh interval."""
    for n in range(3 * PURGE_BATCH):
        expiring.store_user_value(f"old{n}", "a", n)
    clock.advance(GONE)
    expiring.get_user_value("reader", "a")
    expiring.get_user_value("reader", "a")
    assert len(expiring._backend.sessions()) == 2 * PURGE_BATCH
    clock.advance(REFRESH)
    expiring.get_user_value("reader", "a")
    assert len(expiring._backend.sessions()) == PURGE_BATCH


def test_purge_older_than_and_without_expiry(open_db: OpenDb, clock: Clock) -> None:
    """purge_expired(older_than=...) works without expire_after; without either it refuses."""
    db = open_db()
    db.store_user_value("old", "a", 1)
    clock.advance(3600)
    db.store_user_value("new", "a", 1)
    with pytest.raises(ValueError, match="older_than"):
        db.purge_expired()
    assert db.purge_expired(older_than=datetime.timedelta(minutes=30)) == 1
    assert db.list_users() == ["new"]


def test_expired_user_can_start_again(expiring: DashDatabase, clock: Clock) -> None:
    """A write after expiry starts a fresh session with only the new value."""
    expiring.store_user_value("u", "a", 1)
    clock.advance(GONE)
    expiring.store_user_value("u", "b", 2)
    assert expiring.user("u") == {"b": 2}


def test_a_process_new_to_a_user_records_its_first_write(
    expiring: DashDatabase, clock: Clock
) -> None:
    """A write from a process that has not seen the user yet leaves no early expiry behind."""
    expiring.store_user_value("u", "a", 1)
    clock.advance(REFRESH * 0.9)
    expiring._activity.forget("u")  # as a gunicorn worker that has not served "u" yet
    expiring.store_user_value("u", "b", 2)
    clock.advance(REFRESH * 0.99)
    assert sorted(expiring.list_stored_user_keys("u")) == ["a", "b"]  # last activity
    clock.advance(EXPIRE - 1)
    assert expiring.get_user_value("u", "a") == 1


def test_purge_spares_a_user_active_after_the_cutoff(expiring: DashDatabase, clock: Clock) -> None:
    """The idle check and the delete are one transaction: activity after the cutoff wins."""
    expiring.store_user_value("u", "a", 1)
    cutoff = clock.now - 1
    assert not expiring._backend.delete_idle_user("u", cutoff)
    assert expiring.get_user_value("u", "a") == 1


def test_reads_write_activity_rarely(expiring: DashDatabase, clock: Clock) -> None:
    """Within a refresh interval, reads do not write the last-activity time again."""
    expiring.store_user_value("u", "a", 1)
    first = expiring.user_stats("u").last_activity
    clock.advance(REFRESH / 2)
    expiring.get_user_value("u", "a")
    assert expiring.user_stats("u").last_activity == first
    clock.advance(REFRESH)
    expiring.get_user_value("u", "a")
    assert expiring.user_stats("u").last_activity == clock.now


def test_stats_count_users_keys_and_bytes(db: DashDatabase, clock: Clock) -> None:
    """stats() and user_stats() report users, keys, bytes and last activity."""
    assert (db.stats().users, db.stats().keys, db.stats().bytes) == (0, 0, 0)
    db.store_user_value("a", 1, b"x" * 1000)
    db.store_user_value("a", 2, "y")
    db.store_user_value("b", 1, b"z" * 5000)
    stats = db.stats()
    assert (stats.users, stats.keys) == (2, 3)
    assert 6000 < stats.bytes < 6200
    user = db.user_stats("a")
    assert user.keys == 2
    assert 1000 < user.bytes < 1100
    assert user.last_activity == clock.now
    assert db.user_stats("nobody").last_activity is None


def test_stats_count_chunked_values_whole(db: DashDatabase) -> None:
    """A value stored in several chunks counts with all its bytes."""
    db._backend.chunk_size = 1024
    db.store_user_value("a", "big", b"x" * 10_000)
    assert 10_000 < db.user_stats("a").bytes < 10_200


def test_expire_after_arguments(open_db: OpenDb) -> None:
    """expire_after takes seconds or a timedelta, and names itself when wrong."""
    open_db(expire_after=datetime.timedelta(hours=1))
    open_db(expire_after=30)
    with pytest.raises(ValueError, match="expire_after must be more than 0"):
        open_db(expire_after=0)
    with pytest.raises(TypeError, match="expire_after must be seconds"):
        open_db(expire_after="1h")


def test_key_quota(open_db: OpenDb) -> None:
    """max_keys_per_user refuses a new key past the limit, names it, and changes nothing."""
    db = open_db(max_keys_per_user=2)
    db.store_user_value("u", "a", 1)
    db.store_user_value("u", "b", 2)
    db.store_user_value("u", "b", 3)  # replacing is not a new key
    with pytest.raises(QuotaExceededError) as caught:
        db.store_user_value("u", "c", 4)
    assert str(caught.value) == (
        "max_keys_per_user=2: user_id='u' already has 2 values; storing key_name='c' would "
        "make 3. Nothing was stored; delete some of its values or raise the limit"
    )
    with pytest.raises(QuotaExceededError):
        db.update_user_value("u", "c", lambda old: 1, default=0)
    assert db.user("u") == {"a": 1, "b": 3}
    db.store_user_value("other", "c", 4)  # per user


def test_a_refused_first_write_leaves_no_activity(open_db: OpenDb, clock: Clock) -> None:
    """A new user's write refused by a quota records no activity; its next write does."""
    db = open_db(max_bytes_per_user=100)
    with pytest.raises(QuotaExceededError):
        db.store_user_value("new", "k", b"x" * 500)
    assert db.user_stats("new").last_activity is None
    db.store_user_value("new", "k", b"x")
    assert db.user_stats("new").last_activity == clock()


def test_user_byte_quota(open_db: OpenDb) -> None:
    """max_bytes_per_user counts the user's other values plus the new one."""
    db = open_db(max_bytes_per_user=3000)
    db.store_user_value("u", "a", b"x" * 1500)
    db.store_user_value("u", "a", b"x" * 2900)  # replaces: only the new size counts
    with pytest.raises(
        QuotaExceededError,
        match=r"max_bytes_per_user=3,000: the value for "
        r"key_name='b' takes \d+ bytes and would make user_id='u''s values take",
    ):
        db.store_user_value("u", "b", b"y" * 200)
    with pytest.raises(QuotaExceededError):
        db.update_user_value("u", "a", lambda old: old + b"z" * 500)
    assert db.user("u") == {"a": b"x" * 2900}


def test_total_byte_quota(open_db: OpenDb) -> None:
    """max_total_bytes counts every user's values."""
    db = open_db(max_total_bytes=5000)
    db.store_user_value("a", "v", b"x" * 2400)
    db.store_user_value("b", "v", b"x" * 2400)
    with pytest.raises(QuotaExceededError, match=r"max_total_bytes=5,000.*the store take"):
        db.store_user_value("c", "v", b"x" * 300)
    assert db.list_users() == ["a", "b"]
    db.delete_all_user_values("a")
    db.store_user_value("c", "v", b"x" * 300)


def test_quota_arguments(open_db: OpenDb) -> None:
    """Quotas are positive ints; anything else names the argument."""
    with pytest.raises(ValueError, match="max_keys_per_user must be at least 1"):
        open_db(max_keys_per_user=0)
    with pytest.raises(TypeError, match="max_total_bytes must be an int"):
        open_db(max_total_bytes=1.5)
