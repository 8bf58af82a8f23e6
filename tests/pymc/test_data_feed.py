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
"""Data feeds: the hook fitting loops drive, and the guard every other computation meets."""

import numpy as np
import pytensor.tensor as pt
import pytest

import pymc as pm

from pymc.data_feed import feeding_data
from pymc.exceptions import SourceDataError, StreamingNotSupportedError
from tests.list_feed import ListFeed


def test_the_guard_refuses_other_computations_until_the_caller_feeds_the_data():
    feed = ListFeed([np.arange(10.0), np.arange(10.0) + 1])
    with pm.Model() as model:
        mu = pm.Normal("mu", 0, 10)
        pm.Normal("y", mu, 1, observed=feed.buffer)
    with pytest.raises(StreamingNotSupportedError, match=r"^compile_logp .*one batch .*'list'"):
        model.compile_logp()
    with feeding_data():
        logp = model.compile_logp()
    with pytest.raises(StreamingNotSupportedError):
        model.compile_logp()  # the permission ends with the block
    assert np.isfinite(logp({"mu": 0.0}))
    prior = pm.sample_prior_predictive(draws=3, model=model, var_names=["mu"])  # reads no data
    assert prior.prior["mu"].shape == (1, 3)


class UncountedFeed(ListFeed):
    """A feed that learns its rows from the model, as an iterator of unknown length would."""

    declared = None

    @property
    def num_rows(self):
        return self.declared

    def declare_num_rows(self, rows):
        self.declared = rows


def test_a_feed_that_cannot_tell_its_rows_needs_total_size():
    feed = UncountedFeed([np.arange(10.0)])
    with pm.Model():
        with pytest.raises(
            SourceDataError, match=r"cannot tell its number of rows.*Pass total_size="
        ):
            pm.Normal("y", 0, 1, observed=feed.buffer)
        pm.Normal("z", 0, 1, observed=feed.buffer, total_size=1_000)
    assert feed.declared == 1_000


def test_the_guard_lets_through_what_reads_only_the_shape_of_fed_data():
    # pm.Normal("b", shape=X_mb.shape[1]): the number of columns, not the values of the batch.
    feed = ListFeed([np.zeros(10)])
    fed_shape = feed.buffer.shape
    f = pm.pytensorf.compile([], [fed_shape[0], pt.zeros(fed_shape).sum()])
    assert [int(v) for v in f()] == [10, 0]
    with pytest.raises(StreamingNotSupportedError):
        pm.pytensorf.compile([], [fed_shape[0], feed.buffer.sum()])  # the values, too
    with pytest.raises(StreamingNotSupportedError):
        pm.pytensorf.compile([], pt.nonzero(feed.buffer)[0].shape[0])  # a shape from values


def test_the_refusal_names_the_function_called_from_its_traceback():
    feed = ListFeed([np.arange(10.0)])
    with pm.Model() as model:
        pm.Normal("y", pm.Normal("mu"), 1, observed=feed.buffer)
    with pytest.raises(StreamingNotSupportedError) as refused:
        model.compile_logp()
    assert str(refused.value).startswith("compile_logp (pymc.model.core) would evaluate")
    with pytest.raises(StreamingNotSupportedError) as refused:
        pm.pytensorf.compile([], feed.buffer.sum())
    assert str(refused.value).startswith("compile (pymc.pytensorf) would evaluate")
