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

from collections.abc import Iterator
from typing import Any

__all__ = ["Exhausted", "Failed", "Prefetcher"]

_POLL_SECONDS = 0.05


class Exhausted:
    """Marks the end of the iterator in the queue."""


class Failed:
    """Carries an exception raised by the iterator to the consumer, traceback included."""

    def __init__(self, error: BaseException):
        self.error = error


class Prefetcher:
    """Pull items from ``iterator`` in a daemon thread, at most ``depth`` ahead of the consumer.

    The consumer calls :meth:`get`, which returns the next item, an :class:`Exhausted` marker, or
    a :class:`Failed` carrying the exception the iterator raised. :meth:`stop` ends the thread
    promptly and returns the items it had prepared but nobody consumed, in order, so that a later
    reader can hand them out first: nothing is lost or read twice.

    Parameters
    ----------
    iterator : Iterator
        Advanced only by the background thread while it runs.
    depth : int
        Items prepared ahead. Memory grows with ``depth`` times the size of an item.
    name : str
        The thread's name, for debugging.
    """

    def __init__(self, iterator: Iterator, *, depth: int, name: str = "pymc-stream-reader"):
        if depth < 1:
            raise ValueError(f"Prefetch depth must be at least 1, got {depth}.")
        self._iterator = iterator
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stopping = threading.Event()
        self._unsent: list[Any] = []
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
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
        try:
            for item in self._iterator:
                if not self._put(item):
                    return
            self._put(Exhausted())
        except BaseException as error:  # delivered to the consumer, raised there
            self._put(Failed(error))

    def get(self):
        """Return the next item, waiting for the thread if it has none ready."""
        while True:
            try:
                return self._queue.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                if not self._thread.is_alive() and self._queue.empty():
                    # The thread ended without leaving anything: it was stopped.
                    return Exhausted()

    def stop(self) -> list:
        """Stop the thread, wait for it, and return what it prepared that was not consumed."""
        self._stopping.set()
        self._thread.join()
        leftover = []
        while True:
            try:
                leftover.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return leftover + self._unsent

    @property
    def running(self) -> bool:
        return self._thread.is_alive()
