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
"""The batching contract, checked on row ids: full, aligned batches, every row once per epoch."""

import numpy as np


def assert_every_row_once_per_epoch(batcher, n_rows: int, batch_size: int, epochs: int) -> None:
    """Draw ``epochs`` epochs from ``batcher``, whose source holds ``X = [id, -id]`` and ``y = id``.

    Every batch has ``batch_size`` rows with its outputs aligned, and each epoch holds every row
    id exactly once.
    """
    ids = []
    for _ in range(-(-epochs * n_rows // batch_size)):
        (X, y), _ = next(batcher)
        assert X.shape == (batch_size, 2) and y.shape == (batch_size,)
        np.testing.assert_array_equal(X[:, 0], y)  # aligned
        np.testing.assert_array_equal(X[:, 1], -y)
        ids.append(y)
    ids = np.concatenate(ids)
    for epoch in range(epochs):
        epoch_ids = ids[epoch * n_rows : (epoch + 1) * n_rows]
        np.testing.assert_array_equal(np.sort(epoch_ids), np.arange(n_rows))
