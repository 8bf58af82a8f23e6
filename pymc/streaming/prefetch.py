#   Copyright 2026 - present The PyMC Developers
#
#   Licensed under the Apache License, Version 2.0 (the "License");
#   you may not use this file except in compliance with the License.
#   You may obtain a copy of the License at
#
#       http://www.apache.org/licenses/LICENSE-2.0
#
#   Unless required by applicable law or agreed to in writing, software
#   distributed under the License is distributed on an "AS IS" BASIS,
#   WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
#   See the License for the specific language governing permissions and
#   limitations under the License.
"""Prefetch: run an iterator in a background thread, a bounded number of items ahead."""

import queue
import threading
import time

from collections.abc import Iterator
from typing import Any

__all__ = ["Exhausted", "Failed", "Prefetcher"]

_POLL_SECONDS = 0.05
_LAUNCH_SECONDS = 1.0
"""How long a stop waits for a thread whose start was interrupted to show that it runs."""


class Exhausted:
    """Marks the end of the iterator in the queue."""


class Failed:
    """Carries an exception raised by the iterator to the consumer, traceback included."""

    def __init__(self, error: BaseException):
        self.error = error


class Prefetcher:
    """Pull items from ``iterator`` in a daemon thread, at most ``depth`` ahead of the consumer.

    The thread starts at once, or with :meth:`start` when ``start=False``: a caller that must
    be able to stop it, however it is interrupted, keeps the prefetcher before starting it. The
    consumer calls :meth:`get`, which returns the next item, an :class:`Exhausted` marker, or a
    :class:`Failed` carrying the exception the iterator raised. :meth:`stop` ends the thread
    and returns the items it had prepared but nobody consumed, in order, so that a later reader
    can hand them out first: nothing is lost or read twice.

    The thread checks for a stop between items, never inside one: a stop waits for the item
    being read. ``stop(timeout=...)`` waits a bounded time instead, for a consumer that must
    not hang on a read that does not return (after Ctrl-C); the thread then ends on its own
    once the read returns, and a later ``stop()`` collects what it read.

    Parameters
    ----------
    iterator : Iterator
        Advanced only by the background thread while it runs.
    depth : int
        Items prepared ahead. Memory grows with ``depth`` times the size of an item.
    name : str
        The thread's name, for debugging.
    start : bool, default True
        Start the thread now; otherwise :meth:`start` does.
    """

    def __init__(
        self,
        iterator: Iterator,
        *,
        depth: int,
        name: str = "pymc-stream-reader",
        start: bool = True,
    ):
        if depth < 1:
            raise ValueError(f"Prefetch depth must be at least 1, got {depth}.")
        self._iterator = iterator
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stopping = threading.Event()
        self._launched = threading.Event()
        self._finished = threading.Event()
        self._start_asked = False
        self._unsent: list[Any] = []
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        if start:
            self.start()

    def start(self) -> None:
        """Start the thread. If this is interrupted, :meth:`stop` still ends the thread."""
        self._start_asked = True
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stopping.is_set():
            try:
                self._queue.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        self._unsent.append(item)
        return False

    def _run(self) -> None:
        self._launched.set()
        try:
            while not self._stopping.is_set():
                try:
                    item = next(self._iterator)
                except StopIteration:
                    self._put(Exhausted())
                    return
                if not self._put(item):
                    return
        except BaseException as error:  # delivered to the consumer, raised there
            self._put(Failed(error))
        finally:
            self._finished.set()

    def get(self):
        """Return the next item, waiting for the thread if it has none ready."""
        while True:
            try:
                return self._queue.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                if self._finished.is_set() and self._queue.empty():
                    # The thread ended without leaving anything: it was stopped.
                    return Exhausted()

    def stop(self, timeout: float | None = None) -> list | None:
        """Stop the thread and return what it prepared that was not consumed.

        Parameters
        ----------
        timeout : float, optional
            Seconds to wait for an item being read. ``None`` waits for it.

        Returns
        -------
        list or None
            The items prepared and not consumed, in order; ``None`` if the thread is still
            reading after ``timeout`` seconds. It ends as soon as that read returns; call
            ``stop()`` again to collect what it read.
        """
        self._stopping.set()
        if not self._start_asked:
            return self._leftover()
        deadline = None if timeout is None else time.monotonic() + timeout
        waited_for_launch = 0.0
        while not self._finished.wait(_POLL_SECONDS):
            if not self._launched.is_set() and not self._thread.is_alive():
                # start() was interrupted: the thread either never ran or is about to run,
                # and then ends at once, seeing the stop.
                waited_for_launch += _POLL_SECONDS
                if waited_for_launch >= _LAUNCH_SECONDS:
                    break
            if deadline is not None and time.monotonic() >= deadline:
                return None
        if self._finished.is_set() and self._thread.is_alive():
            self._thread.join()  # returns at once: the thread is past its last statement
        return self._leftover()

    def _leftover(self) -> list:
        leftover = []
        while True:
            try:
                leftover.append(self._queue.get_nowait())
            except queue.Empty:
                break
        unsent, self._unsent = self._unsent, []
        return leftover + unsent

    @property
    def running(self) -> bool:
        return self._thread.is_alive()
