"""The two threads of the folder command (`colorize.cli.overlap`): reading ahead and writing behind."""

import threading
import time
from contextlib import closing

import pytest

from colorize.cli.overlap import BackgroundWriter, prefetch


def counted(count: int, produced: list):
    """0 .. count - 1, each appended to ``produced`` as the reader makes it."""
    for number in range(count):
        produced.append(number)
        yield number


def test_prefetch_keeps_order_and_reads_at_most_depth_ahead():
    produced = []
    reads = prefetch(counted(10, produced), depth=2)
    assert next(reads) == 0
    time.sleep(0.2)  # the reader runs ahead, then waits on the full queue
    assert len(produced) <= 1 + 2 + 1  # the one taken, the queue's two, and the one waiting to go in
    assert list(reads) == list(range(1, 10))


def test_prefetch_raises_the_readers_error_to_the_consumer_after_the_items_before_it():
    def items():
        yield 1
        raise ValueError("bad folder")

    reads = prefetch(items(), depth=4)
    assert next(reads) == 1
    with pytest.raises(ValueError, match="bad folder"):
        next(reads)


def test_closing_prefetch_early_stops_the_reader():
    produced = []
    with closing(prefetch(counted(1000, produced), depth=2)) as reads:
        assert next(reads) == 0
    count = len(produced)
    time.sleep(0.3)
    assert len(produced) == count < 10
    assert not any(thread.name == "colorize-reader" for thread in threading.enumerate())


def test_the_writer_writes_every_task_in_order_before_close_returns_even_on_ctrl_c():
    written = []

    def write(task):
        time.sleep(0.01)
        written.append(task)

    with pytest.raises(KeyboardInterrupt):
        with BackgroundWriter(write, depth=2) as writer:
            for task in range(5):
                writer.submit(task)
            raise KeyboardInterrupt
    assert written == [0, 1, 2, 3, 4]


def test_a_write_that_raises_is_raised_by_close_and_later_tasks_still_run():
    written = []

    def write(task):
        if task == 1:
            raise RuntimeError("encoder crashed")
        written.append(task)

    writer = BackgroundWriter(write, depth=1)
    for task in range(4):
        writer.submit(task)  # never blocks forever: the thread keeps taking tasks after the error
    with pytest.raises(RuntimeError, match="encoder crashed"):
        writer.close()
    assert written == [0, 2, 3]
