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
"""The demos' plots: no title or text is drawn over another plot's labels."""

import importlib.util

from pathlib import Path

import matplotlib
import numpy as np
import pytest

from arviz_base import from_dict

matplotlib.use("Agg")

DEMO = Path(__file__).resolve().parents[2] / "demo"


def _demo(name: str):
    spec = importlib.util.spec_from_file_location(f"demo_{name}", DEMO / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _posterior(seed: int, means: dict[str, np.ndarray], sd: float):
    rng = np.random.default_rng(seed)
    draws = {name: rng.normal(mean, sd, (1, 500, *np.shape(mean))) for name, mean in means.items()}
    return from_dict({"posterior": draws})


def _collisions(collection) -> list[tuple[str, str]]:
    """Pairs of labels drawn over each other: a plot's title or text over a title, tick label or
    text of another plot, or two texts of one plot."""
    figure = collection.viz["figure"].item()
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    labels = [
        (axes, text, text in axes.texts, text.get_window_extent(renderer))
        for axes in figure.axes
        for text in [axes.title, *axes.get_xticklabels(), *axes.texts]
        if text.get_text() and text.get_visible()
    ]
    return [
        (text.get_text(), other.get_text())
        for axes, text, is_text, box in labels
        if is_text or text is axes.title
        for other_axes, other, other_is_text, other_box in labels
        if other is not text
        and (other_axes is not axes or (is_text and other_is_text))
        and box.overlaps(other_box)
    ]


@pytest.fixture(scope="module")
def larger_than_memory():
    return _demo("larger_than_memory")


def test_larger_than_memory_plot_has_no_overlapping_labels(larger_than_memory, tmp_path):
    truth = {"intercept": 0.5, "beta": np.round(np.linspace(-1.9, 1.4, 10), 2).tolist()}
    tree = _posterior(0, {"intercept": 0.5, "beta": np.asarray(truth["beta"])}, 0.01)
    collection = larger_than_memory.plot(tree, truth, tmp_path / "plot.png")
    assert _collisions(collection) == []
    assert (tmp_path / "plot.png").stat().st_size > 10_000


def test_comparison_plot_has_no_overlapping_labels(tmp_path):
    streaming_demo = _demo("streaming_demo")
    means = {"intercept": 1.0, "beta": np.array([0.5, -1.0, 2.0]), "sigma": 1.0}
    trees = {
        name: _posterior(seed, means, sd)
        for seed, (name, sd) in enumerate(
            {"streaming": 0.03, "in-memory": 0.03, "full": 0.02}.items()
        )
    }
    collection = streaming_demo.plot(trees, tmp_path / "plot.png")
    assert _collisions(collection) == []
    assert (tmp_path / "plot.png").stat().st_size > 10_000
