"""``miner verify`` on a real dune project: the episode's red state fails with the
recorded OCaml error in a warm scratch copy, and its fix builds green."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from miner import pipeline
from miner.describe import get_describer
from miner.describe_stage import read_episodes
from miner.record import REPRODUCED
from miner.verify.verify import verify_out_dir
from tests.repos import Repo
from tests.test_ocaml import PROJECT, SHAPE_1, SHAPE_1_TYPE, SHAPE_1_UNBOUND, step

pytestmark = pytest.mark.skipif(
    shutil.which("dune") is None or shutil.which("ocamlc") is None, reason="needs dune and ocamlc"
)


def test_dune_episode_reproduces(repo: Repo, tmp_path: Path) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    repo.ignore("_build", "*.install", ".merlin")
    for name, text in PROJECT.items():
        repo.write(name, text)
    repo.commit("shapes")
    step(repo, data, {}, "green")
    step(repo, data, {"lib/shape.ml": SHAPE_1_TYPE}, "red")
    step(repo, data, {"lib/shape.ml": SHAPE_1_UNBOUND}, "red")
    step(repo, data, {"lib/shape.ml": SHAPE_1}, "green")
    pipeline.run(data, out, describer=get_describer("offline"))

    report = verify_out_dir(data, out, jobs=2)
    assert report.outcomes == {REPRODUCED: 1}
    (episode,) = read_episodes(out)
    assert episode.verified == REPRODUCED, episode.verify_output
    assert "Unbound value Geometry.pie" in (episode.verify_output or "")
