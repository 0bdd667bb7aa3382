"""Overlap a folder's file work with the model's: photos are decoded ahead of the model in one thread and written
behind it in another, each through a bounded queue, so the UNet does not wait for JPEG decoding or encoding (PIL
releases the GIL for both) and memory holds at most a few photos more than the batch in flight."""

import queue
import threading
from collections.abc import Callable, Iterable, Iterator

_END = object()  # the last item of a queue


class _Raised:
    """An exception of the reading thread, carried to the consumer."""

    def __init__(self, error: BaseException):
        self.error = error


def _put(items: queue.Queue, item, stop: threading.Event):
    """Put ``item`` unless ``stop`` is set while the queue is full."""
    while not stop.is_set():
        try:
            items.put(item, timeout=0.1)
            return
        except queue.Full:
            continue


def prefetch(items: Iterable, depth: int) -> Iterator:
    """``items`` in order, produced by a background thread at most ``depth`` ahead of the consumer. An exception in
    the producer is raised to the consumer; closing the iterator early (``break``, Ctrl-C, `contextlib.closing`) stops
    the producer after the item it is making."""
    ready, stop = queue.Queue(maxsize=depth), threading.Event()

    def produce():
        try:
            for item in items:
                if stop.is_set():
                    return
                _put(ready, item, stop)
        except BaseException as error:  # noqa: BLE001 - handed to the consumer, which raises it
            _put(ready, _Raised(error), stop)
            return
        _put(ready, _END, stop)

    thread = threading.Thread(target=produce, name="colorize-reader", daemon=True)
    thread.start()
    try:
        while (item := ready.get()) is not _END:
            if isinstance(item, _Raised):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()


class BackgroundWriter:
    """Runs ``write(task)`` for each submitted task, in order, in one thread; `submit` waits while ``depth`` tasks are
    pending. `close` (or leaving the ``with`` block, Ctrl-C included) waits until every submitted task is written,
    then raises what a ``write`` raised, if any (``write`` should report its own failures; later tasks still run)."""

    def __init__(self, write: Callable, depth: int):
        self.tasks, self.error = queue.Queue(maxsize=depth), None
        self.thread = threading.Thread(target=self._run, args=(write,), name="colorize-writer", daemon=True)
        self.thread.start()

    def _run(self, write: Callable):
        while (task := self.tasks.get()) is not _END:
            try:
                write(task)
            except BaseException as error:  # noqa: BLE001 - kept for close(), which raises it
                self.error = self.error or error

    def submit(self, task):
        self.tasks.put(task)

    def close(self):
        if self.thread.is_alive():
            self.tasks.put(_END)
            self.thread.join()
        if self.error is not None:
            raise self.error

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
