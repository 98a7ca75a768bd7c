"""The Sekoia.io API circuit breaker, on a clock the test moves."""

from __future__ import annotations

import pytest
from notirouter.plugins.sekoia.circuit import Circuit, CircuitOpen


class Clock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def opened(clock: Clock) -> Circuit:
    circuit = Circuit("sekoia", threshold=2, cooldown=5, cooldown_max=30, monotonic=clock)
    for _ in range(2):
        assert circuit.admit() is False
        circuit.failed(False, "HTTP 503")
    assert circuit.is_open
    return circuit


def test_cool_down_doubles_per_failed_probe_up_to_the_maximum() -> None:
    clock = Clock()
    circuit = opened(clock)
    waits = []
    for _ in range(5):
        start = clock.now
        while circuit.is_open:
            with pytest.raises(CircuitOpen):
                circuit.admit()
            clock.now += 0.5
        waits.append(clock.now - start)
        assert circuit.admit() is True  # the probe
        circuit.failed(True, "timeout")
    assert waits == [5, 10, 20, 30, 30]


def test_one_probe_at_a_time_and_an_answer_closes() -> None:
    clock = Clock()
    circuit = opened(clock)
    clock.now += 5
    assert circuit.admit() is True
    with pytest.raises(CircuitOpen):
        circuit.admit()  # the probe is still under way
    circuit.succeeded(True)
    assert not circuit.is_open
    assert circuit.admit() is False
    # Closed again: it takes a whole new run of failures to reopen, at the first cool-down.
    circuit.failed(False, "HTTP 500")
    assert not circuit.is_open
    circuit.failed(False, "HTTP 500")
    assert circuit.is_open
    clock.now += 5
    assert circuit.admit() is True


def test_an_abandoned_probe_lets_the_next_call_probe() -> None:
    clock = Clock()
    circuit = opened(clock)
    clock.now += 5
    assert circuit.admit() is True
    circuit.abandoned(True)  # e.g. cancelled at shutdown
    assert circuit.admit() is True


def test_threshold_zero_disables_it() -> None:
    circuit = Circuit("sekoia", threshold=0, cooldown=5, cooldown_max=30)
    for _ in range(100):
        assert circuit.admit() is False
        circuit.failed(False, "timeout")
    assert not circuit.is_open
