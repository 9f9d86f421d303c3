"""The BLAS thread tuner keeps the fastest count as the machine's load changes."""

import numpy as np
import pytest

from digits.blas_threads import (
    RETUNE_SECONDS,
    ThreadTuner,
    blas_thread_setter,
    candidate_counts,
)


class FakeMachine:
    """Steps whose duration depends on the thread count and on how busy the machine is."""

    def __init__(self, cost):
        self.now = 0.0
        self.threads = None
        self.cost = cost  # threads -> seconds per step
        self.calls = []

    def set_threads(self, n):
        self.threads = n
        self.calls.append(n)

    def clock(self):
        return self.now

    def run(self, tuner, steps):
        used = []
        tuner.tick()
        for _ in range(steps):
            self.now += self.cost(self.threads)
            used.append(self.threads)
            tuner.tick()
        return used


def test_candidates():
    assert candidate_counts(1) == [1]
    assert candidate_counts(2) == [2, 1]
    assert candidate_counts(8) == [8, 7, 4, 1]


def test_quiet_machine_keeps_all_threads_and_spends_few_steps_trying():
    machine = FakeMachine(lambda n: {2: 0.010, 1: 0.015}[n])
    tuner = ThreadTuner(machine.set_threads, 2, machine.clock)
    used = machine.run(tuner, 5000)  # 50 s of steps: several retunes
    assert tuner.choices and set(tuner.choices) == {2}
    assert used.count(1) / len(used) < 0.02


def test_busy_core_moves_to_one_thread_and_back_when_it_is_free():
    busy = {"on": False}
    machine = FakeMachine(lambda n: (0.040 if n == 2 else 0.015) if busy["on"]
                          else (0.010 if n == 2 else 0.015))
    tuner = ThreadTuner(machine.set_threads, 2, machine.clock)
    machine.run(tuner, 300)
    assert machine.threads == 2
    busy["on"] = True
    used = machine.run(tuner, 2000)
    assert machine.threads == 1
    # The slowdown is noticed within a few steps, not at the next periodic retune.
    assert used[:20].count(2) < 12
    assert used.count(1) / len(used) > 0.9
    busy["on"] = False
    machine.run(tuner, 3000)  # the periodic retune finds the free core again
    assert machine.threads == 2


def test_close_restores_all_threads():
    machine = FakeMachine(lambda n: {2: 0.040, 1: 0.015}[n])
    tuner = ThreadTuner(machine.set_threads, 2, machine.clock)
    machine.run(tuner, 20)
    assert machine.threads == 1
    tuner.close()
    assert machine.threads == 2


def test_single_thread_machines_are_left_alone():
    machine = FakeMachine(lambda n: 0.01)
    tuner = ThreadTuner(machine.set_threads, 1, machine.clock)
    machine.run(tuner, 100)
    assert machine.calls == [] and not tuner.active


def test_retune_period_is_respected():
    machine = FakeMachine(lambda n: {2: 0.010, 1: 0.015}[n])
    tuner = ThreadTuner(machine.set_threads, 2, machine.clock)
    machine.run(tuner, int(3.5 * RETUNE_SECONDS / 0.010))
    assert len(tuner.choices) in (3, 4)


def test_the_real_blas_library_is_controlled():
    pytest.importorskip("threadpoolctl")
    from threadpoolctl import threadpool_info

    set_threads, count = blas_thread_setter()
    blas = [i for i in threadpool_info() if i["user_api"] == "blas"]
    if not blas:
        pytest.skip("NumPy has no BLAS library threadpoolctl can control here")
    try:
        set_threads(1)
        assert all(i["num_threads"] == 1 for i in threadpool_info() if i["user_api"] == "blas")
        a = np.ones((64, 64))
        np.testing.assert_allclose(a @ a, 64.0)
    finally:
        set_threads(count)
