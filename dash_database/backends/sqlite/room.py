"""Room to delete on a full disk: a reserve file beside the store, given up when the disk fills.

Every change to a SQLite file in WAL mode appends to its write-ahead log, a delete
too, and a log that has filled the disk can only be emptied by a checkpoint, which
copies its pages into the file, so it needs room of its own. Without room, a store
on a full disk could not even delete to free space. So each store keeps
``<database>-reserve``, :func:`reserve_bytes` of allocated disk: enough for the
largest checkpoint (a full log, plus one value stored inline). When a write finds
the disk full, the reserve is removed and the log checkpointed and cut back, and
deletes have room again. Then each write that adds data first makes the reserve again,
if the volume has room; if not, it is refused while the volume has less than half the
reserve free. (A store does not give the disk of deleted values back to the volume:
SQLite keeps their pages for its next writes.)
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil

from ...exceptions import StorageError

logger = logging.getLogger("dash_database")

#: The disk a store keeps by default: a log of 4,000 pages of 4 KiB before it is
#: checkpointed (see ``connection.CHECKPOINT_PAGES``), and one 8 MiB value inline.
RESERVE_BYTES = 24 * 1024 * 1024
#: The environment variable that sets another size, in bytes (0: keep none).
RESERVE_VARIABLE = "DASH_DATABASE_RESERVE_BYTES"


def reserve_bytes() -> int:
    """The disk a store keeps for deletes: :data:`RESERVE_VARIABLE`, or :data:`RESERVE_BYTES`.

    :raises ValueError: the variable is not a whole number of bytes.
    """
    text = os.environ.get(RESERVE_VARIABLE)
    if text is None:
        return RESERVE_BYTES
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f"{RESERVE_VARIABLE}={text!r} must be a whole number of bytes, e.g. 0")
    return int(text)


def disk_full(message: str) -> StorageError:
    """The error of a write refused for want of disk, with its ``errno`` and what to do."""
    return StorageError(
        errno.ENOSPC,
        f"{message}: the disk is full. Delete values or users (deletes still work), or free "
        "space on the volume; this call changed nothing",
    )


def _allocate(fd: int, size: int) -> None:
    """Give the file ``size`` bytes of disk: allocated, not sparse, so that they are there
    to give back. Where ``posix_fallocate`` is missing (macOS) or refused by the file
    system, by writing zeros.

    :raises OSError: the disk has no room for them.
    """
    try:
        os.posix_fallocate(fd, 0, size)
        return
    except AttributeError:
        pass
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
            raise
    block = bytes(min(size, 1024 * 1024))
    for start in range(0, size, len(block) or 1):
        os.write(fd, block[: size - start])
    os.fsync(fd)


class Reserve:
    """The reserve file of one store.

    :param path: the database file.
    """

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path) + "-reserve"
        self.size = reserve_bytes()
        #: Whether this process found the disk full since the reserve was last made.
        self.released = not self.make()

    def make(self) -> bool:
        """Make the reserve if it is missing and the volume has room; whether it is there."""
        if not self.size or os.path.exists(self.path):
            return True
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            return True  # another process made it
        except OSError:
            return False
        try:
            _allocate(fd, self.size)
        except OSError:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            return False
        os.close(fd)
        return True

    def release(self) -> None:
        """Give the reserve's disk back (the disk is full)."""
        if not self.released:
            logger.warning("%s: the disk is full; releasing the reserve for deletes", self.path)
        self.released = True
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def check_room(self, where: str) -> None:
        """Before a write that adds data, once the disk was found full: make the reserve
        again if the volume has room for it; else refuse the write while the volume has less
        than half the reserve free, which deletes keep.

        :raises StorageError: the disk is still full (``errno`` ENOSPC).
        """
        if not self.released:
            return
        if self.make():
            self.released = False
            return
        if shutil.disk_usage(os.path.dirname(self.path)).free < self.size // 2:
            raise disk_full(where)
