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
import pytest

from forktool import ForkError
from forktool.hunks import parse_diff

PATCH = """\
Why: two edits far apart.

--- a/pymc/long.py
+++ b/pymc/long.py
@@ -1,4 +1,4 @@
-line 1
+LINE 1
 line 2
 line 3
 line 4
@@ -17,4 +17,5 @@
 line 17
 line 18
+++ an added line that looks like a header
 line 19
 line 20
\\ No newline at end of file
"""


def test_hunks_are_read_by_their_line_counts():
    diff = parse_diff(PATCH)
    assert diff.explanation == "Why: two edits far apart.\n\n"
    assert [(h.location, h.added, h.removed) for h in diff.hunks] == [
        ("@@ -1,4 +1,4 @@", 1, 1),
        ("@@ -17,4 +17,5 @@", 1, 0),
    ]
    assert diff.hunks[1].body[-1] == "\\ No newline at end of file\n"
    assert diff.explanation + diff.render() == PATCH


def test_render_keeps_only_the_selected_hunks():
    diff = parse_diff(PATCH)
    text = diff.render([2])
    assert text.startswith("--- a/pymc/long.py\n+++ b/pymc/long.py\n@@ -17,4 +17,5 @@\n")
    assert "LINE 1" not in text


def test_a_truncated_hunk_is_refused():
    with pytest.raises(ForkError, match=r"x\.patch: hunk 2 \(@@ -17,4 \+17,5 @@\) ends early"):
        parse_diff(PATCH.split(" line 19")[0], "x.patch")


def test_text_without_a_diff_is_refused():
    with pytest.raises(ForkError, match="holds no unified diff"):
        parse_diff("just words\n", "x.patch")
