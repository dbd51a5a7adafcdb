"""What a read of a topic found, and the rules every engine's topics follow.

A topic is a sequence number (its head: ``0`` before its first message) and a buffer of its
last messages. A reader holds a cursor, the last sequence it saw, and asks for what came
after it; the answer is the messages after the cursor, or a gap when it cannot be given
whole (see :func:`after`).
"""

from __future__ import annotations

from typing import NamedTuple


class Poll(NamedTuple):
    """What a read of a topic after a cursor found.

    :param messages: the encoded messages after the cursor, in order.
    :param last: the sequence of the last of them (the cursor, if none).
    :param gap: some of them are gone: the buffer overran, or the topic started over.
    """

    messages: list[bytes]
    last: int
    gap: bool


def after(cursor: int, head: int, buffered: list[tuple[int, bytes]]) -> Poll:
    """The messages after ``cursor`` of a topic whose head is ``head`` and whose buffer,
    from some sequence on, is ``buffered`` (pairs of sequence and message, in order).

    A cursor past the head was given out before the topic started over (it expired, or
    the store was wiped): a gap, so that the reader starts again rather than wait until
    the sequence climbs back past it. A buffer that no longer starts right after the
    cursor overran: a gap too.
    """
    if cursor > head:
        return Poll([], cursor, True)
    fresh = [(seq, message) for seq, message in buffered if seq > cursor]
    if cursor == head or not fresh:
        return Poll([], cursor, cursor < head)
    if fresh[0][0] != cursor + 1:
        return Poll([], cursor, True)
    return Poll([message for _, message in fresh], fresh[-1][0], False)
