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
"""Readers of data larger than memory, sources for ``pm.Minibatch(..., streaming=True)``.

One module per format: files (:mod:`.npy_files`, :mod:`.csv_files`, :mod:`.arrow_files`,
:mod:`.array_files`), Dask collections (:mod:`.dask_source`), and what they share (file access
in :mod:`.files`, chunked arrays in :mod:`.chunked`, optional packages in :mod:`.optional`).
:mod:`.adapters` lets PyMC find the reader of an object by itself. The public names of every
module here are also importable from :mod:`pymc_extras.streaming`, which finds them itself.
"""
