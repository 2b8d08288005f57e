"""One retry loop (`doradus._retry.retry`) and the backends' one bound (`ConnectBound`)."""

from __future__ import annotations

import pytest

from doradus import ConnectError, TransportError
from doradus._retry import retry
from doradus.backends._mqtt import MqttSettings
from doradus.backends._network import CONNECT_RETRIES, RETRY_INTERVAL, ConnectBound
from doradus.backends._redis import RedisSettings


class Flaky:
    """Fails ``failures`` times with ``error``, then answers."""

    def __init__(self, failures: int, error: BaseException) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "answer"


def test_a_late_answer_is_returned_after_the_retries_it_took() -> None:
    flaky, seen = Flaky(2, OSError("refused")), []
    got = retry(
        flaky,
        attempts=3,
        interval=0,
        retry_on=(OSError,),
        give_up=RuntimeError,
        before_retry=lambda k, exc: seen.append((k, str(exc))),
    )
    assert (got, flaky.calls, seen) == ("answer", 3, [(1, "refused"), (2, "refused")])


def test_giving_up_raises_what_give_up_makes_from_the_last_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    pauses: list[float] = []
    monkeypatch.setattr("doradus._retry.time.sleep", pauses.append)
    flaky = Flaky(10, ConnectionRefusedError("refused"))
    give_up = TimeoutError("gave up")
    with pytest.raises(TimeoutError, match="gave up") as caught:
        retry(flaky, attempts=4, interval=0.25, retry_on=(OSError,), give_up=lambda _: give_up)
    assert flaky.calls == 4
    assert pauses == [0.25] * 3  # between attempts, none after the last
    assert isinstance(caught.value.__cause__, ConnectionRefusedError)


def test_other_failures_pass_through_at_once() -> None:
    flaky = Flaky(1, KeyError("no"))
    with pytest.raises(KeyError):
        retry(flaky, attempts=5, interval=0, retry_on=(OSError,), give_up=RuntimeError)
    assert flaky.calls == 1


@pytest.mark.parametrize("attempts", [0, -3, 1])
def test_it_always_tries_at_least_once(attempts: int) -> None:
    flaky = Flaky(5, OSError("refused"))
    with pytest.raises(RuntimeError):
        retry(flaky, attempts=attempts, interval=0, retry_on=(OSError,), give_up=RuntimeError)
    assert flaky.calls == 1


def test_every_backend_has_one_default_bound() -> None:
    assert ConnectBound() == ConnectBound.from_options({}) == ConnectBound(CONNECT_RETRIES, RETRY_INTERVAL)
    assert RedisSettings().bound == MqttSettings().bound == ConnectBound()  # brokers as well
    assert ConnectBound().seconds == pytest.approx(CONNECT_RETRIES * RETRY_INTERVAL)


def test_the_bound_reads_the_options_and_clamps_their_edges() -> None:
    as_text = {"connect_retries": "3", "retry_interval": "0.5"}
    assert ConnectBound.from_options(as_text) == ConnectBound(3, 0.5)
    assert ConnectBound.from_options({"connect_retries": 0, "retry_interval": -1}) == ConnectBound(1, 0.0)
    with pytest.raises(TransportError, match="connect_retries"):
        ConnectBound.from_options({"connect_retries": "many"})


def test_an_unreachable_peer_is_worded_one_way() -> None:
    bound = ConnectBound(2, 0)
    with pytest.raises(ConnectError) as caught:
        bound.connect(Flaky(9, OSError("refused")), node_id="a", target="'b' at 127.0.0.1:9")
    said = "node 'a' could not reach 'b' at 127.0.0.1:9 after 2 attempts, 0 s apart: refused"
    assert str(caught.value) == said
    assert isinstance(caught.value.__cause__, OSError)
    assert str(bound.unreachable("a", "redis at redis://x", TimeoutError())).endswith(": TimeoutError")
