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


from pymc.data_feed import memory
from pymc.data_feed.memory import memory_limit

GiB = 2**30


def fake_proc(tmp_path, monkeypatch, cgroup: str, mounts: list[str]):
    (tmp_path / "cgroup").write_text(cgroup)
    (tmp_path / "mountinfo").write_text("\n".join(mounts) + "\n")
    monkeypatch.setattr(memory, "_PROC_CGROUP", str(tmp_path / "cgroup"))
    monkeypatch.setattr(memory, "_PROC_MOUNTINFO", str(tmp_path / "mountinfo"))
    monkeypatch.setattr(memory, "_physical_memory", lambda: 64 * GiB)
    monkeypatch.setattr(memory, "_address_space_limit", lambda: None)


def test_cgroup_v2_limits_of_the_group_and_its_parents_count(tmp_path, monkeypatch):
    root = tmp_path / "sys"
    (root / "user.slice" / "job").mkdir(parents=True)
    (root / "memory.max").write_text("max\n")
    (root / "user.slice" / "memory.max").write_text(f"{3 * GiB}\n")  # a parent's limit binds
    (root / "user.slice" / "job" / "memory.max").write_text("max\n")
    fake_proc(
        tmp_path,
        monkeypatch,
        "0::/user.slice/job\n",
        [f"35 24 0:30 / {root} rw,nosuid - cgroup2 cgroup2 rw,nsdelegate"],
    )
    assert memory_limit() == 3 * GiB


def test_cgroup_v1_memory_limit_counts_and_no_limit_is_left_out(tmp_path, monkeypatch):
    root = tmp_path / "memory"
    (root / "docker" / "abc").mkdir(parents=True)
    (root / "memory.limit_in_bytes").write_text("9223372036854771712\n")  # v1's "no limit"
    (root / "docker" / "abc" / "memory.limit_in_bytes").write_text(f"{2 * GiB}\n")
    mounts = [
        f"30 25 0:26 / {tmp_path / 'cpu'} rw - cgroup cgroup rw,cpu",
        f"31 25 0:27 / {root} rw,relatime - cgroup cgroup rw,memory",
    ]
    fake_proc(tmp_path, monkeypatch, "5:cpu:/x\n4:memory:/docker/abc\n0::/\n", mounts)
    assert memory_limit() == 2 * GiB
    (root / "docker" / "abc" / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    assert memory_limit() == 64 * GiB  # the machine's memory


def test_a_container_that_sees_the_hosts_cgroup_path_reads_its_mount(tmp_path, monkeypatch):
    root = tmp_path / "sys"
    root.mkdir()
    (root / "memory.max").write_text(f"{GiB}\n")
    fake_proc(
        tmp_path,
        monkeypatch,
        "0::/kubepods/pod1/container\n",  # a path that the container's mount does not have
        [f"35 24 0:30 / {root} rw - cgroup2 cgroup2 rw"],
    )
    assert memory_limit() == GiB


def test_without_proc_the_machines_memory_is_the_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(memory, "_PROC_CGROUP", str(tmp_path / "missing"))
    monkeypatch.setattr(memory, "_physical_memory", lambda: 8 * GiB)
    monkeypatch.setattr(memory, "_address_space_limit", lambda: None)
    assert memory_limit() == 8 * GiB
    monkeypatch.setattr(memory, "_physical_memory", lambda: None)
    assert memory_limit() is None
