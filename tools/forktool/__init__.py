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
"""Assemble the streaming fork of PyMC from pinned upstream sources and our patch set.

Standard library only: it runs on whatever ``python3`` the machine has (3.11 here) and creates
the fork's virtual environment on a Python >= 3.12, which PyMC 6 requires.
"""


class ForkError(Exception):
    """A problem the user must fix; its message says what was found and what to do."""
