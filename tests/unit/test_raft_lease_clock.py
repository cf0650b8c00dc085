"""The driver's clock check of a lease (metadata.replication.driver): a lease runs
lease_ticks tick lengths from the moment the tick its heartbeat round was stamped with was
counted, by a clock that runs while the process is paused, whatever the ticks say."""
from types import SimpleNamespace

from metadata.replication import driver
from metadata.replication.driver import TICK_TIMES_KEPT, RaftReplicator


def _replicator(times: dict[int, float], ticks: int = 0) -> SimpleNamespace:
    return SimpleNamespace(_tick_times=times, _lease_seconds=0.3, node=SimpleNamespace(ticks=ticks))


def test_a_lease_holds_until_lease_ticks_tick_lengths_after_its_round_and_no_longer(monkeypatch):
    rep = _replicator({7: 100.0})
    monkeypatch.setattr(driver, "_lease_clock", lambda: 100.29)
    assert RaftReplicator._lease_holds(rep, 7)
    # A process paused for a second counted no ticks meanwhile: the clock still ran.
    monkeypatch.setattr(driver, "_lease_clock", lambda: 101.3)
    assert not RaftReplicator._lease_holds(rep, 7)


def test_a_round_from_a_tick_whose_time_is_not_known_gives_no_lease(monkeypatch):
    monkeypatch.setattr(driver, "_lease_clock", lambda: 100.0)
    assert not RaftReplicator._lease_holds(_replicator({7: 100.0}), 6)


def test_tick_times_are_bounded(monkeypatch):
    monkeypatch.setattr(driver, "_lease_clock", lambda: 5.0)
    rep = _replicator({0: 0.0})
    for t in range(1, 3 * TICK_TIMES_KEPT):
        rep.node.ticks = t
        RaftReplicator._note_tick(rep)
    assert len(rep._tick_times) <= TICK_TIMES_KEPT + 1
    assert rep._tick_times[3 * TICK_TIMES_KEPT - 1] == 5.0


def test_the_lease_clock_runs_in_seconds():
    a = driver._lease_clock()
    assert 0 <= driver._lease_clock() - a < 1.0
