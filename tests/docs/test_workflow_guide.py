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
"""The user guide's workflow after the fit runs as written, on a Parquet file, and checks out."""

import re

from pathlib import Path

import matplotlib
import numpy as np
import pytest

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "streaming.md"
SECTION = "## The Bayesian workflow on data larger than memory"


def section_code() -> str:
    text = GUIDE.read_text()
    section = text[text.index(SECTION) :]
    following = section.find("\n## ", len(SECTION))
    section = section if following < 0 else section[:following]
    return "\n".join(re.findall(r"```python\n(.*?)```", section, re.DOTALL))


@pytest.mark.filterwarnings(
    # approx.sample() on a streaming model says, as it should, that observed_data leaves the
    # streamed observations out; the guide then gets them for a subsample.
    "ignore:observed_data leaves out:UserWarning"
)
def test_workflow_runs_as_written_and_checks_out():
    matplotlib.use("Agg")
    namespace: dict = {}
    exec(compile(section_code(), str(GUIDE), "exec"), namespace)
    matplotlib.pyplot.close("all")
    # Fit, converged: the averaged posterior recovers the coefficients.
    beta = namespace["idata"].posterior["beta"].mean(("chain", "draw")).values
    np.testing.assert_allclose(beta, [1.0, -0.5, 0.25], atol=0.02)
    # Check: the subsample has its observations; the replicated statistics bracket the data's.
    assert namespace["check"].observed_data["y"].sizes == {"row": 2_000}
    p_values = namespace["p_values"].values
    assert ((p_values > 0.02) & (p_values < 0.98)).all(), p_values
    assert namespace["checks"].attrs["rows"] == 100_000
    # Predict: one row of summaries per new row, in order.
    predictions = namespace["predictions"]
    assert namespace["report"].rows == predictions.num_rows == 200_000
    np.testing.assert_array_equal(predictions["row"].to_numpy(), np.arange(200_000))
    # Compare: the model with x3 wins clearly; the corrected LOO has good Pareto k values.
    comparison = namespace["comparison"]
    assert list(comparison.index) == ["x1 + x2 + x3", "x1 + x2"]
    assert comparison.loc["x1 + x2", "elpd_diff"] < -10 * comparison.loc["x1 + x2", "dse"]
    corrected = namespace["loo_corrected"]
    assert corrected.approx_posterior
    assert np.nanmax(corrected.pareto_k.values) <= corrected.good_k
