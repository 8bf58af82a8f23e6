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
"""Full-data passes here or on a Dask cluster: a map over partitions, combined in their order."""

import contextlib
import threading
import time
import uuid

from abc import ABC, abstractmethod
from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import cloudpickle
import numpy as np

from pymc.exceptions import SourceDataError
from pymc.streaming.sources import Chunk, Source
from pytensor.graph.basic import Variable
from pytensor.tensor.type import TensorType

from pymc_extras.streaming.passes.dask_recipes import ParquetPieces, Recipe, recipes
from pymc_extras.streaming.passes.minibatched_data import PASS_CHUNK_ROWS, data_chunks, split_chunk

__all__: list[str] = []  # helpers of the package: imported by name, not exported

QUIET_TIMEOUT = 60.0
"""Seconds a pass that failed on a cluster waits for its tasks still running on the workers to
end (a task cannot be interrupted; a cancelled one runs to its end and its result is dropped),
so that nothing of it runs when the error is raised."""


class PartitionPass(ABC):
    """What one full-data pass computes on a run of consecutive chunks: a small partial result.

    A pass over a source is a map over its partitions followed by a combination of their
    partial results in partition order, so that the result is the same at every run. The same
    object serves both backends of :class:`PassRunner`: here, it is called once per chunk of
    :func:`~pymc_extras.streaming.passes.minibatched_data.data_chunks`; on a Dask cluster, once per partition,
    on the worker that computed it, with the partition in chunks of at most ``rows`` rows.
    Only the object itself (once per worker), the inputs of a pass and the partial results
    travel, never rows. So the object must pickle (PyTensor functions do: loading one compiles
    it again from PyTensor's cache), and its partial results should be small.
    """

    @abstractmethod
    def partial(self, inputs: Any, chunks: Iterable[Chunk], *, first_row: int, first: bool) -> Any:
        """The partial result of ``chunks``, whose first row is row ``first_row`` of the data.

        Parameters
        ----------
        inputs : object
            What the pass was run with (:meth:`PassRunner.run`): the points, the draws.
        chunks : iterable of tuple of ndarray
            Consecutive chunks of the data, cast to the placeholders' dtypes.
        first_row : int
            The row number in the data of the first row of ``chunks``.
        first : bool
            True for exactly one call of a pass, the one whose chunks come first: where terms
            that are counted once per pass (a prior) are added.
        """


@dataclass
class PassTraffic:
    """What a pass on a cluster moved between this process and the workers, and among them.

    Attributes
    ----------
    partitions : int
        Partitions evaluated, one task each.
    sent_bytes : int
        Bytes of what this pass sent to the cluster (pickled): its task graph (how to compute
        each partition, as the collection describes it: file names for a Parquet dataset), its
        inputs once to each worker, and, on a runner's first pass on a client, the
        :class:`PartitionPass` once to each worker.
    received_bytes : int
        Bytes of the partial results the pass gathered (pickled): one per partition.
    worker_outgoing_bytes : int
        Bytes the workers served out of their memory while the pass ran, by Dask's own
        counters (``Worker.transfer_outgoing_bytes_total``): to each other, when a task needs
        a result held by another worker, and to this process, the partial results. Partitions
        that travelled would count here.
    seconds : float
        Wall time of the pass.
    """

    partitions: int
    sent_bytes: int
    received_bytes: int
    worker_outgoing_bytes: int
    seconds: float


def cluster_of(source: Source) -> Any:
    """The ``distributed.Client`` whose workers should run passes over ``source``, or None.

    A :class:`~pymc_extras.streaming.readers.dask_source.DaskSource` with a distributed client (given
    as its ``scheduler``, or the current one); None for every other source, which a pass reads
    here.
    """
    client_of = getattr(source, "distributed_client", None)
    if client_of is None or not hasattr(source, "partitions"):
        return None
    return client_of()


class _Shipped:
    """A pass object and how to read partitions, pickled once, loaded once per process.

    A worker receives this object once (it is scattered to every worker) and keeps it in memory
    for every pass; the pass object inside, with its compiled functions, is loaded the first
    time a task needs it, in the task's thread, and kept for the next ones. Tasks of one worker
    use it one at a time: a compiled PyTensor function must not run in two threads at once.
    """

    def __init__(self, kernel: PartitionPass, reader: Any, dtypes: list[np.dtype], rows: int):
        self.payload = cloudpickle.dumps(kernel)
        self.reader, self.dtypes, self.rows = reader, dtypes, rows
        self._init_local()

    def _init_local(self) -> None:
        self._lock = threading.Lock()
        self._kernel: PartitionPass | None = None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        del state["_lock"], state["_kernel"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._init_local()

    def run(self, inputs: Any, index: int, first_row: int, computed: Sequence) -> tuple[int, Any]:
        """Partition ``index``, computed, evaluated by the pass object: its rows, its result."""
        chunk = self.reader.chunk(index, computed)
        chunk = tuple(np.asarray(part, dtype=dtype) for part, dtype in zip(chunk, self.dtypes))
        return len(chunk[0]), self._partial(inputs, split_chunk(chunk, self.rows), index, first_row)

    def run_pieces(
        self, inputs: Any, index: int, first_row: int, pieces: ParquetPieces
    ) -> tuple[int, Any]:
        """Partition ``index``, read and evaluated a piece of ``rows`` rows at a time."""
        read = 0

        def chunks() -> Generator[Chunk]:
            nonlocal read
            for frame in pieces.frames(self.rows):
                chunk = self.reader.chunk(index, [frame], whole=False)
                read += len(chunk[0])
                yield tuple(np.asarray(p, dtype=d) for p, d in zip(chunk, self.dtypes))

        partial = self._partial(inputs, chunks(), index, first_row)
        expected = self.reader.block_rows[index]
        if read != expected:
            raise SourceDataError(
                f"Partition {index} of the data ({pieces.path}) has {read} rows, but "
                f"{expected} when the source was built. The data changed while it was being "
                "read, or lengths= is wrong."
            )
        return read, partial

    def _partial(self, inputs: Any, chunks: Iterable[Chunk], index: int, first_row: int) -> Any:
        with self._lock:
            if self._kernel is None:
                self._kernel = cloudpickle.loads(self.payload)
            return self._kernel.partial(inputs, chunks, first_row=first_row, first=index == 0)


def _run_partition(shipped: _Shipped, inputs: Any, index: int, first_row: int, *computed) -> Any:
    """One task of a pass on a cluster: partition ``index``, computed and evaluated here."""
    if len(computed) == 1 and isinstance(computed[0], ParquetPieces):
        return shipped.run_pieces(inputs, index, first_row, computed[0])
    if len(computed) == 1 and isinstance(computed[0], Recipe):
        computed = tuple(computed[0].compute())
    return shipped.run(inputs, index, first_row, computed)


def _transferred(dask_worker) -> int:
    return int(dask_worker.transfer_outgoing_bytes_total)


def _executing(keys: set, dask_worker) -> list:
    return [ts.key for ts in dask_worker.state.executing if ts.key in keys]


class PassRunner:
    """Runs the passes of one :class:`PartitionPass` over one source, here or on a cluster.

    Each :meth:`run` decides where its pass runs. Over a
    :class:`~pymc_extras.streaming.readers.dask_source.DaskSource` with a ``distributed.Client``
    (:func:`cluster_of`), the pass is a map over the partitions: each task computes a
    partition on a worker, converts it to arrays there and hands it to the pass object in
    chunks of at most ``rows`` rows; a partition that is a plain read of Parquet row groups
    (``dask.dataframe.read_parquet`` without filters) is read a piece at a time as it is
    evaluated, instead of whole. Only the pass object (sent once to each worker, and loaded
    there once), the inputs of the pass and the partial results travel. Over any other source
    the pass reads :func:`~pymc_extras.streaming.passes.minibatched_data.data_chunks` here, a thread reading
    ahead while the pass object evaluates. Either way, the partial results come back in the
    order of the data, and every pass must read the rows the source declares.

    Faults on a cluster: a task whose worker dies is run again elsewhere by Dask (up to
    ``distributed.scheduler.allowed-failures`` times), so the result is unchanged; past that,
    or when a partition fails to compute, the error is raised here with its own type (a
    ``KilledWorker``, or what reading the partition raised), with a note naming the partition
    and its rows. The pass's other tasks are then cancelled, and the pass waits (up to
    :data:`QUIET_TIMEOUT` seconds) until none of them runs on a worker.

    Parameters
    ----------
    kernel : PartitionPass
        What the pass computes.
    source : Source
        The data.
    placeholders : sequence of Variable
        One per output of the source: the chunks are cast to their dtypes.
    rows : int, default PASS_CHUNK_ROWS
        Most rows in one chunk handed to ``kernel`` (65,536). A worker reads a plain Parquet
        partition in pieces of at most this many rows (16,384 at a time); it holds any other
        partition whole, as Dask computes it, and hands it over in views of this many rows.
    num_rows : int, optional
        The rows every pass must read: by default the source's own count
        (``source.num_rows``), else the rows of the first complete pass.

    Raises
    ------
    SourceDataError
        From a pass that reads more or fewer rows than ``num_rows``: as soon as it has read
        more, or at its end. The pass is abandoned: its partial results must not be used.

    Attributes
    ----------
    traffic : PassTraffic or None
        What the last pass moved, if it ran on a cluster.

    Examples
    --------
    A pass that sums a column, here (no client) or on the workers of one:

    >>> import numpy as np
    >>> import pytensor.tensor as pt
    >>> from pymc.streaming.sources import ArraySource
    >>> from pymc_extras.streaming.passes.pass_runner import PartitionPass, PassRunner
    >>> class Total(PartitionPass):
    ...     def partial(self, inputs, chunks, *, first_row, first):
    ...         return sum(float(chunk[0].sum()) for chunk in chunks) * inputs
    >>> runner = PassRunner(Total(), ArraySource([np.arange(10.0)]), [pt.vector("x")])
    >>> with runner.run(2.0) as partials:
    ...     total = sum(partials)
    >>> total
    90.0
    """

    def __init__(
        self,
        kernel: PartitionPass,
        source: Source,
        placeholders: Sequence[Variable],
        *,
        rows: int = PASS_CHUNK_ROWS,
        num_rows: int | None = None,
    ):
        self.kernel = kernel
        self.source = source
        self.placeholders = list(placeholders)
        self.rows = int(rows)
        self.num_rows = source.num_rows if num_rows is None else int(num_rows)
        self.traffic: PassTraffic | None = None
        self._shipped: _Shipped | None = None
        self._on_cluster: tuple[Any, Any] | None = None  # (client, future of _Shipped)
        self._recipes: list[tuple] | None = None  # how each task gets its partition

    @contextlib.contextmanager
    def run(self, inputs: Any) -> Generator[Generator[Any]]:
        """One pass: a context giving the partial results, in the order of the data.

        Leaving the context ends the pass, however it ends: the reader thread stops, or the
        cluster's tasks are cancelled and waited for.
        """
        client = cluster_of(self.source)
        if client is None:
            partials = self._run_here(inputs)
        else:
            partials = self._run_on_cluster(client, inputs)
        try:
            yield partials
        finally:
            partials.close()

    def _run_here(self, inputs: Any) -> Generator[Any]:
        self.traffic = None
        read = 0
        chunks = data_chunks(self.source, self.placeholders, rows=self.rows)
        with contextlib.closing(chunks):
            for index, chunk in enumerate(chunks):
                size = len(chunk[0])
                self._check_rows(read + size, ended=False)
                yield self.kernel.partial(inputs, [chunk], first_row=read, first=index == 0)
                read += size
        self._check_rows(read, ended=True)

    def _check_rows(self, read: int, *, ended: bool) -> None:
        """Refuse a pass that has read more rows than every pass must, or ended with fewer."""
        expected = self.num_rows
        if expected is None:
            if ended:  # the first complete pass says how many rows the others must read
                self.num_rows = read
            return
        if read > expected or (ended and read != expected):
            count = f"more than {expected} (at least {read})" if read > expected else read
            raise SourceDataError(
                f"A full-data pass over {self.source!r} read {count} rows, but the source "
                f"declares {expected} rows (its row count, or the total_size it was given). "
                "Every pass must read the same rows, or the log densities it adds up belong "
                "to different data: the data changed while it was being read, or total_size "
                "is wrong. The pass was abandoned and nothing of it was used; make the source "
                "yield the same rows at every pass, or give the right total_size."
            )

    def _run_on_cluster(self, client: Any, inputs: Any) -> Generator[Any]:
        import dask

        from distributed import as_completed

        started = time.perf_counter()
        source: Any = self.source
        workers = len(client.scheduler_info(n_workers=-1)["workers"])
        shipped, sent = self._shipped_to(client, workers)
        [inputs_future] = client.scatter([inputs], broadcast=True, hash=False)
        sent += len(cloudpickle.dumps(inputs)) * workers
        block_rows = source.block_rows
        starts = [0, *np.cumsum(block_rows)[:-1].tolist()]
        run = dask.delayed(_run_partition, pure=False)
        tag = f"full-data-pass-{uuid.uuid4().hex[:12]}"  # the name its tasks show in Dask
        if self._recipes is None:
            self._recipes = recipes(source.partitions())
        tasks = [
            run(shipped, inputs_future, index, starts[index], *parts, dask_key_name=(tag, index))
            for index, parts in enumerate(self._recipes)
        ]
        graph: dict = {}
        for task in tasks:
            graph.update(task.__dask_graph__())
        keys = set(graph)
        sent += len(cloudpickle.dumps(graph))  # what the client sends the scheduler, about
        transferred = sum(client.run(_transferred).values())
        futures: list[Any] = client.compute(tasks)
        completed = as_completed(futures)
        position = {future.key: index for index, future in enumerate(futures)}
        received = read = 0
        finished = False
        try:
            done: dict[int, Any] = {}
            following = 0
            for future in completed:
                index = position[future.key]
                if future.status != "finished":
                    _raise(future, index, starts[index], block_rows[index])
                done[index] = future
                while following in done:
                    rows, partial = done.pop(following).result()
                    futures[following] = None  # released: nothing of it stays on the cluster
                    received += len(cloudpickle.dumps(partial))
                    read += rows
                    self._check_rows(read, ended=False)
                    following += 1
                    yield partial
            self._check_rows(read, ended=True)
            finished = True
        finally:
            completed.clear()
            live = [future for future in futures if future is not None]
            if live:
                client.cancel(live, force=True)
            del live, futures, done
            client.cancel([inputs_future])
            if finished:
                moved = sum(client.run(_transferred).values()) - transferred
                self.traffic = PassTraffic(
                    partitions=len(tasks),
                    sent_bytes=sent,
                    received_bytes=received,
                    worker_outgoing_bytes=moved,
                    seconds=time.perf_counter() - started,
                )
            else:
                self.traffic = None
                _wait_until_quiet(client, keys)

    def _shipped_to(self, client: Any, workers: int) -> tuple[Any, int]:
        """The pass object on ``client``'s workers (sent once), and the bytes sent now."""
        if self._on_cluster is not None:
            known_client, future = self._on_cluster
            if known_client is client and future.status == "finished":
                return future, 0
            self.close()
        if self._shipped is None:
            source: Any = self.source
            dtypes = [np.dtype(cast(TensorType, p.type).dtype) for p in self.placeholders]
            self._shipped = _Shipped(self.kernel, source.partition_reader(), dtypes, self.rows)
        [future] = client.scatter([self._shipped], broadcast=True, hash=False)
        self._on_cluster = (client, future)
        return future, len(cloudpickle.dumps(self._shipped)) * workers

    def close(self) -> None:
        """Release the pass object that the workers of a cluster hold for later passes.

        Dropping the runner does the same; a closed runner sends it again if it runs a pass.
        """
        if self._on_cluster is not None:
            client, future = self._on_cluster
            self._on_cluster = None
            with contextlib.suppress(Exception):  # a closed client holds nothing any more
                client.cancel([future])


def _raise(future: Any, index: int, first_row: int, rows: int) -> None:
    """Raise the error of a failed task, with a note naming its partition and rows."""
    try:
        future.result()
    except BaseException as error:
        error.add_note(
            f"Raised by partition {index} of the data (rows {first_row} to "
            f"{first_row + rows - 1}) in a full-data pass on the Dask cluster."
        )
        raise
    raise RuntimeError(f"Partition {index} of a full-data pass ended as {future.status!r}.")


def _wait_until_quiet(client: Any, keys: set, timeout: float = QUIET_TIMEOUT) -> None:
    """Wait until no worker runs a task of the pass: a cancelled task runs to its end."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            running = client.run(_executing, keys)
        except Exception:  # a worker lost meanwhile runs nothing
            return
        if not any(running.values()):
            return
        time.sleep(0.05)
