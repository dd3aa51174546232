"""``SMTPHandler`` against real servers on 127.0.0.1: storms, rate, hangs, failures, flush, close.

The capture server keeps every message, so each test reads back exactly which records
arrived, in which messages.  Batch composition is made deterministic where a count is
asserted (a batch delay of an hour: messages go only when full or when flushed).  Nothing is
asserted about durations; where the point is that the application does not wait, the server
hangs for an hour and pytest-timeout is the guard.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from logging_support import HOST, all_records, dropped_in, logger_for, records_in
from postwire.capture import CaptureServer, FaultScript, RecipientRule
from postwire.logging import SMTPHandler

StartCapture = Callable[..., CaptureServer]
MakeHandler = Callable[..., SMTPHandler]
HOUR = 3600.0


def run_threads(count: int, work: Callable[[int], None]) -> None:
    """Run ``work(i)`` in ``count`` threads released together; wait for all of them."""
    barrier = threading.Barrier(count)

    def run(i: int) -> None:
        barrier.wait()
        work(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


# -- storms ------------------------------------------------------------------------------------


def test_a_storm_from_many_threads_arrives_as_a_few_full_messages_with_every_record(
    start_capture: StartCapture, handler_for: MakeHandler
) -> None:
    server = start_capture()
    handler = handler_for(server, batch_delay=HOUR, batch_max_records=1000, rate_limit=None)
    logger = logger_for(handler)
    threads, each = 8, 1000

    run_threads(threads, lambda t: [logger.error("t%d r%04d", t, i) for i in range(each)])

    assert handler.send_pending()
    messages = server.messages
    assert [m.subject for m in messages] == ["app (1000 records)"] * 8
    records = all_records(messages)
    assert len(records) == threads * each
    for t in range(threads):  # each thread's records, all of them, in the order it logged
        assert [r for r in records if r.startswith(f"t{t} ")] == [
            f"t{t} r{i:04d}" for i in range(each)
        ]
    assert (handler.messages_sent, handler.records_sent, handler.records_dropped) == (8, 8000, 0)
    assert all(m.tls for m in messages)


def test_a_full_queue_drops_the_newest_and_the_next_message_says_how_many(
    start_capture: StartCapture, handler_for: MakeHandler
) -> None:
    server = start_capture()
    handler = handler_for(server, batch_delay=HOUR, queue_max_records=100, rate_limit=None)
    logger = logger_for(handler)

    run_threads(4, lambda t: [logger.error("t%d r%03d", t, i) for i in range(250)])

    assert handler.records_queued == 100  # the bound held through the storm
    assert handler.send_pending()
    (message,) = server.messages
    assert message.subject == "app (100 records, 900 dropped)"
    assert dropped_in(message) == 900
    records = records_in(message)
    assert len(records) == 100
    for t in range(4):  # the newest went: what is left of each thread is where it started
        mine = [r for r in records if r.startswith(f"t{t} ")]
        assert mine == [f"t{t} r{i:03d}" for i in range(len(mine))]
    assert handler.records_dropped == 900


def test_drop_oldest_keeps_the_latest_records(
    start_capture: StartCapture, handler_for: MakeHandler
) -> None:
    server = start_capture()
    handler = handler_for(
        server, batch_delay=HOUR, queue_max_records=100, drop="oldest", rate_limit=None
    )
    logger = logger_for(handler)
    for i in range(1000):
        logger.warning("r%03d", i)
    assert handler.send_pending()
    (message,) = server.messages
    assert records_in(message) == [f"r{i:03d}" for i in range(900, 1000)]
    assert dropped_in(message) == 900


def test_long_records_are_cut_and_the_queue_is_bounded_in_characters(
    start_capture: StartCapture, handler_for: MakeHandler
) -> None:
    server = start_capture()
    handler = handler_for(
        server,
        batch_delay=HOUR,
        batch_max_chars=250_000,
        queue_max_chars=1_000_000,
        rate_limit=1,
        rate_period=HOUR,
    )
    logger = logger_for(handler)
    logger.error("warm-up")
    assert handler.send_pending()  # the hour's one message: the rest waits in the queue
    for i in range(10):
        logger.error("%d %s", i, "x" * 1_000_000)
        assert handler.chars_queued <= 1_000_000
    assert handler.records_queued == 4  # each cut to 250,000 characters
    assert handler.records_dropped == 6

    handler.close()  # one message past the limit, with what fits: one cut record
    _, last = server.messages
    assert last.subject == "app (1 record, 9 dropped)"
    record = "\n".join(records_in(last))  # the record, and the line saying it was cut
    assert record.startswith("0 xxx") and len(record) == 250_000
    assert record.endswith("\n[... cut by postwire.logging: 1000002 characters in all]")


# -- the rate limit -----------------------------------------------------------------------------


def test_the_rate_limit_holds_as_the_server_sees_it(
    start_capture: StartCapture, handler_for: MakeHandler
) -> None:
    arrivals: list[float] = []
    # Stamped when the server stores a message, before it answers: a message counts for the
    # rate limit only once its answer is in, so the server can never see more than allowed.
    server = start_capture(on_message=lambda _: arrivals.append(time.monotonic()))
    handler = handler_for(
        server, batch_delay=HOUR, batch_max_records=10, rate_limit=2, rate_period=1.0
    )
    logger = logger_for(handler)
    for i in range(60):
        logger.error("r%02d", i)

    messages = server.wait_for(6, timeout=60)
    assert all_records(messages) == [f"r{i:02d}" for i in range(60)]  # held back, not lost
    assert len(arrivals) == 6
    for first, third in zip(arrivals, arrivals[2:], strict=False):
        assert third - first >= 1.0
    assert handler.records_dropped == 0


# -- a server that hangs or is down ---------------------------------------------------------


@pytest.fixture
def silent_listener() -> Iterator[socket.socket]:
    """A port on 127.0.0.1 that accepts connections and never says a word."""
    listener = socket.create_server((HOST, 0))
    listener.settimeout(30)
    yield listener
    listener.close()


@pytest.mark.parametrize("hang", ["before the greeting", "after the final dot"])
def test_logging_never_waits_for_a_hung_server_and_the_queue_stays_bounded(
    hang: str,
    start_capture: StartCapture,
    handler_for: MakeHandler,
    silent_listener: socket.socket,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> None:
    settings = {
        "batch_delay": 0.0,
        "queue_max_records": 500,
        "rate_limit": None,
        "timeout": 600.0,  # the client itself would wait ten minutes per step
        "flush_timeout": 0.5,
    }
    if hang == "before the greeting":
        port = silent_listener.getsockname()[1]
        handler = handler_for(mailhost=(HOST, port), **settings)
        logger = logger_for(handler)
        logger.error("first")
        hung, _ = silent_listener.accept()  # the sending thread is now waiting for a greeting
        request.addfinalizer(hung.close)
    else:
        server = start_capture(faults=FaultScript(delay_data_reply=HOUR))
        handler = handler_for(server, **settings)
        logger = logger_for(handler)
        logger.error("first")
        server.wait_for(1)  # stored; its reply will come in an hour

    # While the sending thread is stuck, 20,000 records from 4 threads: every call returns
    # (pytest-timeout would stop the test otherwise), and memory stays at the bound.
    run_threads(4, lambda t: [logger.error("t%d r%04d", t, i) for i in range(5000)])
    assert handler.records_queued == 500
    assert handler.records_dropped == 20_000 - 500

    assert handler.send_pending() is False  # bounded: flush_timeout
    handler.close()  # bounded too, and the same stuck send is not waited for twice
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"postwire.logging.SMTPHandler: closed with 501 log records not yet sent to "
        f"{handler.target}: no answer within flush_timeout=0.5s"
    ]


def test_a_server_that_is_down_costs_a_report_and_the_records(
    handler_for: MakeHandler, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as reserved:  # bound, never listening: connections are refused
        reserved.bind((HOST, 0))
        port = reserved.getsockname()[1]
        handler = handler_for(mailhost=(HOST, port), batch_delay=HOUR, retry_delay=HOUR)
        logger = logger_for(handler)
        for i in range(3):
            logger.error("r%d", i)
        assert handler.send_pending() is False
        assert handler.records_queued == 3  # kept for another try
        handler.close()  # one last try, then they are gone
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(
        f"postwire.logging.SMTPHandler: could not send 3 log records to 127.0.0.1:{port} "
        "(kept for another try): ConnectError:"
    )
    assert (handler.send_failures, handler.records_dropped, handler.messages_sent) == (2, 3, 0)


def test_a_failure_streak_is_reported_once_and_its_records_are_retried(
    start_capture: StartCapture, handler_for: MakeHandler, capsys: pytest.CaptureFixture[str]
) -> None:
    server = start_capture(faults=FaultScript(greeting_421=True))
    handler = handler_for(server, batch_delay=HOUR, retry_delay=HOUR)
    logger = logger_for(handler)
    logger.error("a")
    assert handler.send_pending() is False  # a flush tries once at once, back-off or not
    logger.error("b")
    assert handler.send_pending() is False
    assert handler.send_failures == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "could not send 1 log record to" in line and "(kept for another try)" in line
    assert "421" in line

    server.faults = FaultScript()
    assert handler.send_pending()
    (message,) = server.messages
    assert records_in(message) == ["a", "b"] and dropped_in(message) == 0

    server.faults = FaultScript(greeting_421=True)  # a new streak: a new line
    logger.error("c")
    assert handler.send_pending() is False
    assert len(capsys.readouterr().err.splitlines()) == 1
    assert handler.records_dropped == 0


def test_a_refused_message_is_dropped_and_the_next_one_says_so(
    start_capture: StartCapture, handler_for: MakeHandler, capsys: pytest.CaptureFixture[str]
) -> None:
    bounce = FaultScript(refuse_recipients=(RecipientRule("*@example.org", 550),))
    server = start_capture(faults=bounce)
    handler = handler_for(server, batch_delay=HOUR, retry_delay=0.0)
    logger = logger_for(handler)
    logger.error("refused 1")
    logger.error("refused 2")
    assert handler.send_pending() is False
    assert handler.records_dropped == 2 and handler.records_queued == 0  # 5xx: no retry
    (line,) = capsys.readouterr().err.splitlines()
    assert "(dropped): RecipientsRefused:" in line and "550" in line

    server.faults = FaultScript()
    logger.error("next")
    assert handler.send_pending()
    (message,) = server.messages
    assert message.subject == "app (1 record, 2 dropped)"
    assert records_in(message) == ["next"] and dropped_in(message) == 2


# -- flush and close -------------------------------------------------------------------------


def test_flush_sends_without_waiting_for_the_batch_delay(
    start_capture: StartCapture, handler_for: MakeHandler
) -> None:
    server = start_capture()
    handler = handler_for(server, batch_delay=HOUR)
    logger = logger_for(handler)
    assert handler.send_pending()  # nothing queued: nothing to wait for
    for text in ("one", "two", "three"):
        logger.error(text)
    handler.flush()
    (message,) = server.messages
    assert message.subject == "app (3 records)"
    assert records_in(message) == ["one", "two", "three"]
    assert handler.records_queued == 0


def test_close_sends_the_rest_past_the_rate_limit_once_and_then_takes_nothing(
    start_capture: StartCapture, handler_for: MakeHandler
) -> None:
    server = start_capture()
    handler = handler_for(
        server, batch_delay=HOUR, rate_limit=1, rate_period=HOUR, batch_max_records=3
    )
    logger = logger_for(handler)
    logger.error("r0")
    assert handler.send_pending()
    for i in range(1, 6):
        logger.error("r%d", i)
    assert handler.send_pending() is False  # the rate limit holds: no use waiting
    assert len(server.messages) == 1

    handler.close()
    _, last = server.messages
    assert last.subject == "app (3 records, 2 dropped)"
    assert records_in(last) == ["r1", "r2", "r3"]
    assert "did not fit this last message" in last.email().get_content()
    logger.error("after close")  # no error, no message: dropped and counted
    assert handler.records_dropped == 3
    assert len(server.messages) == 2
    handler.close()  # twice is fine


def test_records_logged_while_sending_are_not_mailed(
    start_capture: StartCapture, handler_for: MakeHandler
) -> None:
    # The handler on postwire's transcript logger at DEBUG: every send logs its exchange
    # there.  Mailed, those records would make the next send, for ever.
    server = start_capture()
    handler = handler_for(server, batch_delay=HOUR, rate_limit=None)
    transcript = logging.getLogger("postwire.transcript")
    level = transcript.level
    transcript.setLevel(logging.DEBUG)
    transcript.addHandler(handler)
    try:
        transcript.error("only this")
        assert handler.send_pending()
        assert handler.records_queued == 0
        assert handler.send_pending()
    finally:
        transcript.removeHandler(handler)
        transcript.setLevel(level)
    (message,) = server.messages
    assert records_in(message) == ["only this"]
    assert handler.records_dropped == 0
