"""Secrets planted in a real workspace never reach the dataset or the spool.

Files, their diffs and the build's output all carry secrets from the corpus;
after a real snapshot and a real roll, every text and blob read back from
Parquet with DuckDB, and every byte of the spool database, is searched.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import duckdb

from snapshotter.record import Identity
from snapshotter.snapshot import SnapshotOptions, take_snapshot
from tests.repos import Repo
from tests.secrets_corpus import SECRETS


def dataset_text(data: Path) -> str:
    con = duckdb.connect()
    parts = []
    for row in con.sql(
        f"""select diff, build.output, to_json(files), to_json(build.diagnostics)
            from read_parquet('{data}/snapshots/*/*/*.parquet', union_by_name=true)"""
    ).fetchall():
        parts += [str(v) for v in row]
    for (content,) in con.sql(
        f"select content from read_parquet('{data}/blobs/*/*/*.parquet', union_by_name=true)"
    ).fetchall():
        parts.append(bytes(content).decode("utf-8", "replace"))
    return "\n".join(parts)


def test_secrets_in_files_diffs_and_build_output_never_reach_disk(
    repo: Repo, tmp_path: Path
) -> None:
    repo.write("settings.py", "DEBUG = False\n")
    repo.commit()
    planted = [snippet for secret in SECRETS for snippet in secret.planted()]
    # the base and the working copy both hold secrets: blobs of both sides are stored
    repo.write("settings.py", "DEBUG = True\n" + "\n".join(planted[::2]) + "\n")
    repo.write("config/deploy.yaml", "\n".join(planted[1::2]) + "\n")
    leak = tmp_path / "leak.txt"
    leak.write_text("\n".join(planted))
    data = tmp_path / "data"
    build = f"cat {shlex.quote(str(leak))}; exit 1"
    report = take_snapshot(
        repo.path, data, SnapshotOptions(build_command=build), Identity("h", "u")
    )
    assert report.build_status == "red" and report.files_changed == 2

    text = dataset_text(data)
    assert "[REDACTED:" in text and "DEBUG = True" in text
    spool = b"".join(p.read_bytes() for p in (data / "spool").iterdir() if p.is_file())
    for secret in SECRETS:
        assert secret.value not in text, f"{secret.name} reached the dataset"
        assert secret.value.encode() not in spool, f"{secret.name} reached the spool"
