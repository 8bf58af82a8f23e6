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
"""A data feed of the hook's own kind for tests: batches from a list, with no stream behind it."""

import numpy as np
import pytensor.tensor as pt

from rich.progress import TextColumn

from pymc.data_feed import DataFeed, FedSharedVariable

__all__ = ["ListFeed"]


class ListFeed(DataFeed):
    """Batches from a list, with a log of its calls; raises ``OSError`` at batch ``fail_at``."""

    def __init__(self, batches: list[np.ndarray], fail_at: int | None = None):
        super().__init__("list")
        self.batches = batches
        self.fail_at = fail_at
        self.calls: list[tuple] = []
        self.buffer = FedSharedVariable(
            type=pt.TensorType("float64", shape=(None,)), value=batches[0], strict=False
        )
        self.buffer.data_feed = self
        self.position = 0

    @property
    def shared_variables(self):
        return (self.buffer,)

    @property
    def num_rows(self):
        return sum(len(batch) for batch in self.batches)

    def start(self, *, restart, random_seed):
        super().start(restart=restart, random_seed=random_seed)
        self.calls.append(("start", restart))
        self.position = 0 if restart else self.position

    def before_step(self):
        if self.position == self.fail_at:
            raise OSError(f"batch {self.position} is unreadable")
        if self.position == len(self.batches):
            raise StopIteration("out of batches")
        self.buffer.set_value(self.batches[self.position])
        self.position += 1

    def stop(self):
        self.calls.append(("stop",))

    def progress_columns(self):
        return (TextColumn("list feed"),)
