"""Datasets of kept episodes for the LLM describer's tests and benchmark."""

from __future__ import annotations

from pathlib import Path

from miner.synthetic import SyntheticDataset


def write_kept_episodes(data_dir: Path, count: int) -> Path:
    """A dataset of ``count`` kept episodes: each breaks and fixes its own module."""
    ds = SyntheticDataset()
    w = ds.workspace()
    files = {
        f"pkg/mod{i}.py": f"def add{i}(a, b):\n    return a + b\n".encode() for i in range(count)
    }
    w.start(files)
    w.snapshot("green")
    for i in range(count):
        path = f"pkg/mod{i}.py"
        w.write(path, f"def add{i}(a, b)\n    return a + b\n".encode())
        w.snapshot(
            "red",
            f'  File "{path}", line 1\n    def add{i}(a, b)\n                   ^\n'
            "SyntaxError: expected ':'\n",
        )
        # each fix its own shape (i's bits as operators): no two are near-duplicates
        shape = "".join(" * 2" if bit == "1" else " - 1" for bit in f"{i:b}")
        w.write(path, f"def add{i}(a, b):\n    return a + b + offset_{i}{shape}\n".encode())
        w.snapshot("green")
    ds.write(data_dir)
    return data_dir
