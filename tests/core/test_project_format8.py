"""Project format 8 (batch API jobs, the batch of a caption version, decoded pixels): a
format-7 file opens read-only as it is, and is migrated with a backup when opened for writing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from loracap.core.project import Project
from loracap.core.project_integrity import _check_header
from tests.core.test_project import ids_by_path, make_dataset, make_version_7, new_project


def test_a_version_7_project_reads_as_it_is_and_migrates_with_a_backup(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path)
    with new_project(dataset) as project:
        ids = ids_by_path(project)
        project.edit_caption(ids["IMG_0001.jpg"], "a hall, oak doors")
    path = dataset / "hall.loraproj"
    make_version_7(path)
    with Project.open(path, read_only=True) as old:  # read-only: not migrated
        record = old.image(ids["IMG_0001.jpg"])
        assert record.caption is not None and record.caption.body == "a hall, oak doors"
        assert len(old.images()) == len(ids) and old.stats().captioned == 2
        assert [v.body for v in old.history(ids["IMG_0001.jpg"])] == ["a hall, oak doors"]
    assert _check_header(path) == 7
    with Project.open(path) as project:
        assert project.image(ids["IMG_0001.jpg"]).caption == record.caption
    assert (_check_header(dataset / "hall.v7-backup.loraproj"), _check_header(path)) == (7, 8)
    conn = sqlite3.connect(path)
    tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
    assert {"batch_jobs", "batch_items"} <= tables
    assert set(conn.execute("SELECT batch FROM caption_versions").fetchall()) == {("",)}
    assert conn.execute("SELECT decoded_size, decoded_mtime FROM images LIMIT 1").fetchone() \
        == (None, None)
    conn.close()
