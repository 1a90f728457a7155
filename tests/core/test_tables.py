"""The plain description of a project file's tables (``loracap.core.tables``, read by the checks
of a file and by ``loracap info`` without SQLAlchemy) is the SQLAlchemy schema's, to the
column: the two cannot drift apart."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import Boolean, DateTime, Float, Integer, String

from loracap.core import schema, tables
from loracap.core.presets import presets_from_json
from loracap.core.project import Project
from loracap.core.schema import Base, FsPath


def _kind(column_type: object) -> str:
    """The kind :mod:`loracap.core.tables` gives a SQLAlchemy column type (``Text`` is a
    ``String``; ``FsPath`` is checked first, as it is text or bytes)."""
    for cls, kind in ((FsPath, tables.PATH), (Boolean, tables.BOOLEAN),
                      (DateTime, tables.DATETIME), (Float, tables.FLOAT),
                      (Integer, tables.INTEGER), (String, tables.TEXT)):
        if isinstance(column_type, cls):
            return kind
    raise AssertionError(f"a column type the description has no kind for: {column_type!r}")


def test_the_description_is_the_schema_table_by_table_and_column_by_column() -> None:
    from_schema = {
        table.name: tuple(tables.Column(column.name, _kind(column.type), bool(column.nullable))
                          for column in table.columns)
        for table in Base.metadata.sorted_tables
    }
    # The same tables in the same order (the checks name the first problem in this order)...
    assert list(tables.TABLES) == list(from_schema)
    # ...each with the same columns in order, of the same kind and nullability.
    for name, columns in from_schema.items():
        assert tables.TABLES[name] == columns, name


def test_the_format_constants_are_the_schemas() -> None:
    assert (schema.SCHEMA_VERSION, schema.APPLICATION_ID, schema.NO_PRESETS) == (
        tables.SCHEMA_VERSION, tables.APPLICATION_ID, tables.NO_PRESETS)
    assert schema.fs_decode is tables.fs_decode
    default = Base.metadata.tables["project"].columns["prompt_presets"].default
    assert default is not None and default.arg == tables.NO_PRESETS  # type: ignore[attr-defined]


def test_every_table_and_column_added_later_exists() -> None:
    for table, column in tables.ADDED_IN_VERSION:
        assert table in tables.TABLES
        assert column == "" or column in {c.name for c in tables.TABLES[table]}, (table, column)
    assert max(tables.ADDED_IN_VERSION.values()) == tables.SCHEMA_VERSION


def test_a_new_project_file_has_exactly_the_described_tables(tmp_path: Path) -> None:
    path = tmp_path / "hall.loraproj"
    with Project.create(path, trigger="hall"):
        pass
    conn = sqlite3.connect(path)
    try:
        names = {name for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}
        found = {name: {row[1] for row in conn.execute(f'PRAGMA table_info("{name}")')}
                 for name in names}
    finally:
        conn.close()
    assert found == tables.expected_tables(tables.SCHEMA_VERSION)


@pytest.mark.parametrize("version", range(1, tables.SCHEMA_VERSION + 1))
def test_an_older_format_expects_only_what_it_had(version: int) -> None:
    expected = tables.expected_tables(version)
    assert ("batch_jobs" in expected) == (version >= 8)
    assert ("review" in expected["images"]) == (version >= 2)
    assert ("input_tokens" in expected["caption_attempts"]) == (version >= 5)
    assert {"images", "captions", "caption_versions", "caption_attempts", "project",
            "lock"} <= set(expected)


def test_the_stored_default_presets_are_no_presets() -> None:
    """The checks of a file skip parsing :data:`~loracap.core.tables.NO_PRESETS` (they need not
    import the presets): it must be what the presets module reads as none."""
    assert presets_from_json(tables.NO_PRESETS) == []
