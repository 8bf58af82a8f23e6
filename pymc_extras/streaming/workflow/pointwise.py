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
"""Per-row quantities of a minibatched model on chunks of rows, for many posterior draws at once."""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import pytensor.tensor as pt

from pymc.model import Model
from pymc.model.transform.conditioning import remove_value_transforms
from pymc.pytensorf import collect_default_updates, compile, reseed_rngs
from pymc.streaming.sources import Chunk
from pytensor.graph.basic import Variable
from pytensor.graph.replace import vectorize_graph
from pytensor.graph.traversal import ancestors, graph_inputs
from pytensor.tensor.variable import TensorVariable

from pymc_extras.streaming.workflow.data_blocks import DataBlock

__all__: list[str] = []  # helpers of the package: imported by name, not exported

PREDICTIVE_BLOCK_ROWS = 1024
"""Rows drawn per compiled call of a predictive pass, each block with its own random seed, so
that the draws of a row depend on the seed and its row number only, never on how the source
is chunked. Memory: draws × 1,024 values per intermediate array (8 MB for 1,000 draws)."""


@dataclass
class Draws:
    """Posterior draws of a model's free variables, flattened over chains and draws.

    Attributes
    ----------
    values : dict of str to ndarray
        Each free variable's draws, shape ``(chains * draws, *shape)``, in the model's dtype.
    chains, draws : int
        The sample dims they were flattened from (in C order: chain-major).
    sample_coords : dict
        The coordinates of ``chain`` and ``draw``.
    """

    values: dict[str, np.ndarray]
    chains: int
    draws: int
    sample_coords: dict

    @classmethod
    def from_posterior(cls, idata, model: Model) -> "Draws":
        """Read the draws of ``model``'s free variables from ``idata.posterior``."""
        posterior = idata["posterior"] if "posterior" in getattr(idata, "children", {}) else idata
        dataset = posterior.to_dataset() if hasattr(posterior, "to_dataset") else posterior
        missing = [rv.name for rv in model.free_RVs if rv.name not in dataset]
        if missing:
            raise KeyError(
                f"The posterior has no draws of {missing}, free variables of the model. Pass the "
                "DataTree that approx.sample(), pmx.fit() or Trainer.sample_posterior() returned "
                "for this model."
            )
        chains, draws = dataset.sizes["chain"], dataset.sizes["draw"]
        values = {}
        for rv in model.free_RVs:
            array = dataset[rv.name].transpose("chain", "draw", ...).values
            values[rv.name] = np.ascontiguousarray(
                array.reshape((chains * draws, *array.shape[2:])), dtype=rv.dtype
            )
        coords = {dim: dataset[dim].values for dim in ("chain", "draw")}
        return cls(values, chains, draws, coords)

    @property
    def size(self) -> int:
        return self.chains * self.draws

    def mean(self) -> "Draws":
        """One draw: the posterior mean of every free variable (the point of ``plpd``)."""
        means = {name: value.mean(axis=0, keepdims=True) for name, value in self.values.items()}
        return Draws(means, 1, 1, {"chain": np.arange(1), "draw": np.arange(1)})

    def ordered(self, names: Sequence[str]) -> list[np.ndarray]:
        return [self.values[name] for name in names]


def _reads(graph: Variable, placeholders: Sequence[Variable]) -> bool:
    return bool(set(placeholders) & set(ancestors([graph])))


def choose_block(
    full_model: Model, blocks: Sequence[DataBlock], var_names, *, deterministics: bool
) -> tuple[DataBlock, list[str]]:
    """The block of data that the variables read, and the variables (default: observed ones).

    Raises
    ------
    ValueError
        If a name is not an observed variable (or a deterministic, when allowed) reading
        streamed data, or the variables read different streams.
    """
    allowed = list(full_model.observed_RVs)
    if deterministics:
        allowed += full_model.deterministics
    reading = {
        var.name: block
        for var in allowed
        for block in blocks
        if _reads(var, block.placeholders)
        or _reads(full_model.rvs_to_values.get(var, var), block.placeholders)
    }
    if var_names is None:
        var_names = [rv.name for rv in full_model.observed_RVs if rv.name in reading]
    elif isinstance(var_names, str):
        var_names = [var_names]
    var_names = list(var_names)
    unknown = [name for name in var_names if name not in reading]
    if unknown or not var_names:
        kinds = "observed variables or deterministics" if deterministics else "observed variables"
        raise ValueError(
            f"{unknown or var_names} are not {kinds} that read streamed data. Those of the model "
            f"are {sorted(reading)}."
        )
    chosen = {id(reading[name]): reading[name] for name in var_names}
    if len(chosen) > 1:
        raise ValueError(
            f"{var_names} read different streams; pass var_names that read one stream at a time."
        )
    return next(iter(chosen.values())), var_names


def _batched_inputs(variables: Sequence[Variable]) -> list[TensorVariable]:
    tensors = cast(Sequence[TensorVariable], variables)
    return [
        pt.tensor(f"{var.name}_draws", dtype=var.dtype, shape=(None,) * (var.ndim + 1))
        for var in tensors
    ]


class ChunkPredictive:
    """Posterior predictive draws (and deterministics) of a model on rows, for many draws at once.

    The model's graph, with its free variables replaced by a batch of posterior draws
    (``vectorize_graph``), is compiled once. Each call draws the observed variables' values for
    every posterior draw on the rows given, from random generators seeded as
    ``pm.sample_posterior_predictive(random_seed=seed)`` seeds its own, so a call on the rows of
    an in-memory model returns the draws that function returns for one random variable.

    Parameters
    ----------
    full_model : Model
        The full-data model (:func:`pymc_extras.streaming.workflow.data_blocks.data_blocks`).
    block : DataBlock
        The data the variables read; a call takes one array per output of it.
    var_names : list of str
        Observed variables to draw, and deterministics to compute.
    """

    def __init__(
        self, full_model: Model, block: DataBlock, var_names: Sequence[str], **compile_kwargs
    ):
        free = list(full_model.free_RVs)
        self.free_names = [rv.name for rv in free]
        self.var_names = list(var_names)
        batched = _batched_inputs(free)
        outputs = vectorize_graph(
            [full_model[name] for name in self.var_names], replace=dict(zip(free, batched))
        )
        self._rngs = list(collect_default_updates(outputs=outputs))
        options = {"on_unused_input": "ignore", **compile_kwargs}
        self._fn = compile([*batched, *block.placeholders], outputs, random_seed=False, **options)
        self._fn.trust_input = True

    def __call__(self, draws: Draws, chunk: Chunk, *, seed: int | None) -> dict[str, np.ndarray]:
        """Draw on ``chunk`` for every posterior draw; ``seed`` reseeds the generators first."""
        if seed is not None:
            reseed_rngs(self._rngs, seed)
        outputs = self._fn(*draws.ordered(self.free_names), *chunk)
        return dict(zip(self.var_names, outputs))


class ChunkLogLikelihood:
    """Pointwise log-likelihood of observed variables on rows, for many draws at once.

    As ``pm.compute_log_likelihood``: the observed variables' elementwise log density, with the
    free variables given on their constrained scale, as the posterior stores them.
    """

    def __init__(
        self, full_model: Model, block: DataBlock, var_names: Sequence[str], **compile_kwargs
    ):
        umodel = remove_value_transforms(full_model)
        self.free_names = [rv.name for rv in umodel.free_RVs]
        self.var_names = list(var_names)
        terms = umodel.logp(vars=[umodel[name] for name in self.var_names], sum=False)
        values = [umodel.rvs_to_values[rv] for rv in umodel.free_RVs]
        batched = _batched_inputs(values)
        terms = vectorize_graph(terms, replace=dict(zip(values, batched)))
        # The copy has its own placeholders: find them by name, in the block's order.
        by_name = {var.name: var for var in graph_inputs(terms) if var.name is not None}
        placeholders = [by_name.get(p.name or "", p) for p in block.placeholders]
        options = {"on_unused_input": "ignore", **compile_kwargs}
        self._fn = compile([*batched, *placeholders], terms, **options)
        self._fn.trust_input = True

    def __call__(self, draws: Draws, chunk: Chunk) -> dict[str, np.ndarray]:
        outputs = self._fn(*draws.ordered(self.free_names), *chunk)
        return dict(zip(self.var_names, outputs))


def block_seed(root: np.random.SeedSequence, block: int) -> int:
    """The integer seed of block ``block`` of a predictive pass seeded by ``root``.

    Block ``b`` holds rows ``b * PREDICTIVE_BLOCK_ROWS`` up to the next block.
    """
    sequence = np.random.SeedSequence(root.entropy, spawn_key=(*root.spawn_key, block))
    return int(sequence.generate_state(1, np.uint32)[0])


def blocks_of_rows(chunks: Iterator[Chunk], rows: int) -> Iterator[tuple[int, Chunk]]:
    """Regroup chunks into blocks of exactly ``rows`` rows (the last one shorter), numbered.

    Yields ``(block number, chunk)``; block ``b`` starts at row ``b * rows`` of the data. Blocks
    inside a chunk are views of it; only a block that straddles two chunks is copied, so at most
    one chunk is held beyond the source's own.
    """
    pending: list[Chunk] = []
    held = 0
    number = 0
    for chunk in chunks:
        size, start = len(chunk[0]), 0
        if held:  # complete the block begun in the previous chunk(s)
            start = min(rows - held, size)
            pending.append(tuple(part[:start] for part in chunk))
            held += start
            if held < rows:
                continue
            yield number, tuple(np.concatenate(parts) for parts in zip(*pending))
            number, pending, held = number + 1, [], 0
        while size - start >= rows:
            yield number, tuple(part[start : start + rows] for part in chunk)
            number, start = number + 1, start + rows
        if start < size:
            pending, held = [tuple(part[start:] for part in chunk)], size - start
    if held:
        yield number, tuple(np.concatenate(parts) for parts in zip(*pending))
