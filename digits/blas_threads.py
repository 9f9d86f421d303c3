"""How many BLAS threads to use, chosen by timing the training steps themselves.

On an idle two-core machine two BLAS threads make the matrix products of a step about 1.5x
faster than one. When another process keeps a core busy, OpenBLAS's threads spin-wait for a
core that is not free, and the same step can take several times as long as with one thread.
Which count is faster depends on what else the machine is doing, and that changes during a
run, so `ThreadTuner` measures instead of guessing: call `tick()` once per training step;
every `retune_seconds` it times a few steps with each candidate count (all threads, one
fewer, half, one) and keeps the fastest, and it retunes at once when steps get clearly slower
than they were when the count was chosen.

On a quiet machine the cost is the few trial steps run with a worse count, about 1% of a
run with the default settings. NumPy's own loops are single-threaded and unaffected.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

WARMUP_STEPS = 1  # the first step after a change pays for waking or parking threads
TRIAL_STEPS = 3  # timed steps per candidate count; their median is the count's speed
RETUNE_SECONDS = 10.0  # how often the candidates are measured again
SLOWDOWN = 1.5  # steps this much slower than when the count was chosen: retune now


def candidate_counts(max_threads: int) -> list[int]:
    """The thread counts worth trying when BLAS may use `max_threads`, most first."""
    counts = {max_threads, max_threads - 1, max_threads // 2, 1}
    return sorted((n for n in counts if n >= 1), reverse=True)


def blas_thread_setter() -> tuple[Callable[[int], None], int]:
    """A function that sets the BLAS thread count, and the count in force now.

    Without threadpoolctl or a BLAS library it can control, the setter does nothing and
    the count is 1, so the tuner stays idle.
    """
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return (lambda n: None), 1
    controller = ThreadpoolController().select(user_api="blas")
    counts = [lib.num_threads for lib in controller.lib_controllers]
    if not counts:
        return (lambda n: None), 1

    def set_threads(n: int) -> None:
        controller.limit(limits=n, user_api="blas")

    return set_threads, max(counts)


class ThreadTuner:
    """Follow what the machine allows: `tick()` after every step, `close()` at the end.

    `set_threads`, `max_threads` and `clock` default to the process's BLAS library and
    `time.perf_counter`; tests pass their own.
    """

    def __init__(
        self,
        set_threads: Callable[[int], None] | None = None,
        max_threads: int | None = None,
        clock: Callable[[], float] = time.perf_counter,
        retune_seconds: float = RETUNE_SECONDS,
    ) -> None:
        if set_threads is None:
            set_threads, found = blas_thread_setter()
            max_threads = found if max_threads is None else max_threads
        self.max_threads = max(1, int(max_threads or 1))
        self.candidates = candidate_counts(self.max_threads)
        self.threads = self.max_threads
        self.choices: list[int] = []  # each count chosen, in order
        self._set = set_threads
        self._clock = clock
        self._retune_seconds = retune_seconds
        self._last_tick: float | None = None
        self._start_trials()

    @property
    def active(self) -> bool:
        return len(self.candidates) > 1

    def tick(self) -> None:
        """Mark the end of one step (and the start of the next)."""
        now = self._clock()
        last, self._last_tick = self._last_tick, now
        if last is None or not self.active:
            return
        seconds = now - last
        if self._trial is not None:
            self._record_trial(seconds, now)
            return
        self._recent = [*self._recent[1 - TRIAL_STEPS:], seconds]
        slower = (len(self._recent) == TRIAL_STEPS
                  and statistics.median(self._recent) > SLOWDOWN * self._chosen_speed)
        if slower or now - self._chosen_at >= self._retune_seconds:
            self._start_trials()

    def close(self) -> None:
        """Give BLAS back all its threads."""
        if self.active:
            self._use(self.max_threads)

    def __enter__(self) -> ThreadTuner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start_trials(self) -> None:
        self._trial: int | None = 0
        self._times: list[float] = []
        self._speeds: dict[int, float] = {}
        self._use(self.candidates[0])

    def _record_trial(self, seconds: float, now: float) -> None:
        self._times.append(seconds)
        if len(self._times) < WARMUP_STEPS + TRIAL_STEPS:
            return
        self._speeds[self.threads] = statistics.median(self._times[WARMUP_STEPS:])
        self._times = []
        self._trial += 1
        if self._trial < len(self.candidates):
            self._use(self.candidates[self._trial])
            return
        best = min(self._speeds, key=lambda n: (self._speeds[n], -n))
        self._trial = None
        self._use(best)
        self.choices.append(best)
        self._chosen_speed = self._speeds[best]
        self._chosen_at = now
        self._recent: list[float] = []

    def _use(self, threads: int) -> None:
        if self.active and (threads != self.threads or not hasattr(self, "_set_once")):
            self._set(threads)
            self._set_once = True
        self.threads = threads
