"""How every figure is taken: turns, medians with their range, and a quiet machine.

These machines are shared and noisy, and one run can be off by 2x. So each
figure is the median of at least 3 turns, shown with its min-max; the engines
of one table take their turns alternately, so a noisy moment hits them all;
and before each engine the runner waits for the other processes' CPU share
to fall, and records the share it saw beside the table.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path

#: Wait before an engine until the other processes use less than this share of the CPU.
QUIET_SHARE = 0.15
#: ... for at most this many seconds; the share measured is printed either way.
QUIET_WAIT = 60.0


@dataclass(frozen=True)
class Figure:
    """One measured quantity over several turns."""

    values: tuple[float, ...]

    @property
    def median(self) -> float:
        """The median of the turns."""
        return statistics.median(self.values)

    def overlaps(self, other: Figure) -> bool:
        """Whether the two ranges overlap: their difference is within the noise."""
        return min(self.values) <= max(other.values) and min(other.values) <= max(self.values)

    def show(self, scale: float = 1.0, digits: int = 0) -> str:
        """``median (min-max)``, each times ``scale``."""
        values = [value * scale for value in self.values]
        median = statistics.median(values)
        return f"{median:,.{digits}f} ({min(values):,.{digits}f}-{max(values):,.{digits}f})"


def _cpu_times() -> tuple[float, float]:
    """Busy and total jiffies of the whole machine, from /proc/stat."""
    fields = [float(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def other_cpu_share(seconds: float = 1.0) -> float:
    """The share of the machine's CPU that other processes used over ``seconds`` (we sleep)."""
    busy, total = _cpu_times()
    time.sleep(seconds)
    busy_after, total_after = _cpu_times()
    return (busy_after - busy) / max(total_after - total, 1.0)


def wait_for_quiet(window: float = 1.0) -> float:
    """Wait until other processes use under :data:`QUIET_SHARE` of the CPU over ``window``
    seconds, or :data:`QUIET_WAIT` seconds in all; return the last share measured."""
    deadline = time.monotonic() + QUIET_WAIT
    share = other_cpu_share(window)
    while share > QUIET_SHARE and time.monotonic() < deadline:
        share = other_cpu_share(window)
    return share


def ratio(value: Figure, base: Figure) -> str:
    """The ratio of the medians, marked when the ranges overlap."""
    text = f"{value.median / base.median:.2f}x"
    return text + " (ranges overlap)" if value is not base and value.overlaps(base) else text
