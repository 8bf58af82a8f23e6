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
"""The workflow after a streaming fit, one module per step a user takes.

Each step calls the layers under it (:mod:`.data_blocks`, :mod:`.pointwise`, the output files,
:mod:`pymc_extras.streaming.passes`), which never call a step back.

Convergence (:mod:`.convergence`), data-dependent deterministics (:mod:`.deterministics`),
chosen rows (:mod:`.rows`), predictions and checks in memory (:mod:`.predictive`), written to
files (:mod:`.predictive_passes`, with :mod:`.output_files` and :mod:`.row_outputs`), and
sub-sampled PSIS-LOO (:mod:`.loo`, with :mod:`.approximation` and :mod:`.pointwise`).
"""
