"""A fake clock for code that waits: it moves only when the code sleeps."""

from __future__ import annotations


class FakeClock:
    """``clock()`` gives the time; ``clock.sleep(s)`` records ``s`` and moves the time on."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
