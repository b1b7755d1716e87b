"""The rotation journal: its file, its records and its reader."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import stat
from pathlib import Path

import pytest

from nylas_async import JournalError, JournalRecord, read_journal
from nylas_async._journal import JournalWriter, open_journal

SECRET = "s3cr3t-value-never-shown"


def _record(webhook_id: str, outcome: str, **kw: object) -> JournalRecord:
    return JournalRecord(
        webhook_id=webhook_id,
        outcome=outcome,
        time=dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        **kw,  # type: ignore[arg-type]
    )


async def _write(path: Path, *records: JournalRecord) -> None:
    writer = JournalWriter(open_journal(path), str(path))
    try:
        await asyncio.gather(*(writer.submit(r) for r in records))
    finally:
        await writer.aclose()


class TestJournalRecord:
    def test_secret_not_in_repr_or_str(self) -> None:
        """A record's repr and str never show its secret."""
        record = _record("wh1", "rotated", webhook_secret=SECRET)

        assert SECRET not in repr(record)
        assert SECRET not in str(record)

    def test_round_trip(self) -> None:
        """A record read back from its line equals the record written."""
        record = _record(
            "wh1",
            "failed",
            request_id="r1",
            client_request_id="c1",
            attempts=3,
            error="HTTP 404",
            transient=False,
        )

        line = record.to_line()

        assert line.endswith(b"\n")
        assert JournalRecord.from_json(json.loads(line)) == record

    @pytest.mark.parametrize(
        ("record", "settled"),
        [
            pytest.param(_record("a", "rotated"), True, id="rotated"),
            pytest.param(
                _record("a", "failed", transient=False), True, id="definite"
            ),
            pytest.param(
                _record("a", "failed", transient=True), False, id="transient"
            ),
            pytest.param(_record("a", "unknown"), False, id="unknown"),
            pytest.param(_record("a", "started"), False, id="started"),
        ],
    )
    def test_settled(self, record: JournalRecord, settled: bool) -> None:
        """Only rotated and definite failures are left alone on resume."""
        assert record.settled is settled

    @pytest.mark.parametrize(
        "data",
        [
            pytest.param([], id="not-an-object"),
            pytest.param({"outcome": "rotated", "time": "2025"}, id="no-id"),
            pytest.param(
                {"webhook_id": "a", "outcome": "gone", "time": "2025-01-01"},
                id="bad-outcome",
            ),
            pytest.param(
                {"webhook_id": "a", "outcome": "rotated"}, id="no-time"
            ),
        ],
    )
    def test_from_json_rejects(self, data: object) -> None:
        """Data that is not a record gives None rather than an error."""
        assert JournalRecord.from_json(data) is None


class TestOpenJournal:
    def test_new_file_is_private(self, tmp_path: Path) -> None:
        """A new journal is created with mode 0600."""
        path = tmp_path / "j.jsonl"

        os.close(open_journal(path))

        assert stat.S_IMODE(path.stat().st_mode) == 0o600

    def test_umask_cannot_widen(self, tmp_path: Path) -> None:
        """Even with an open umask the journal is not readable by others."""
        path = tmp_path / "j.jsonl"
        old = os.umask(0)
        try:
            os.close(open_journal(path))
        finally:
            os.umask(old)

        assert stat.S_IMODE(path.stat().st_mode) == 0o600

    @pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o606])
    def test_refuses_file_open_to_others(
        self, tmp_path: Path, mode: int
    ) -> None:
        """An existing journal readable or writable by others is refused."""
        path = tmp_path / "j.jsonl"
        path.write_text("")
        path.chmod(mode)

        with pytest.raises(JournalError, match="open to other users"):
            open_journal(path)
        assert stat.S_IMODE(path.stat().st_mode) == mode

    def test_keeps_narrower_mode(self, tmp_path: Path) -> None:
        """An existing journal narrower than 0600 is used and not widened."""
        path = tmp_path / "j.jsonl"
        path.write_text("")
        path.chmod(0o400 | 0o200)

        os.close(open_journal(path))

        assert stat.S_IMODE(path.stat().st_mode) == 0o600

    def test_refuses_directory(self, tmp_path: Path) -> None:
        """A path that is not a regular file is refused."""
        with pytest.raises(OSError):  # noqa: PT011 -- EISDIR, platform text
            open_journal(tmp_path)

    async def test_seals_torn_line(self, tmp_path: Path) -> None:
        """After a torn line, the next record starts on a line of its own."""
        path = tmp_path / "j.jsonl"
        await _write(path, _record("a", "rotated", webhook_secret="x"))
        with path.open("ab") as f:
            f.write(b'{"webhook_id":"b","outcome":"rot')

        await _write(path, _record("c", "rotated", webhook_secret="y"))

        lines = path.read_bytes().splitlines()
        assert lines[1] == b'{"webhook_id":"b","outcome":"rot'
        assert set(read_journal(path)) == {"a", "c"}


class TestJournalWriter:
    async def test_records_in_order(self, tmp_path: Path) -> None:
        """Records submitted together land in the order submitted."""
        path = tmp_path / "j.jsonl"
        records = [_record(f"wh{i}", "started") for i in range(50)]

        await _write(path, *records)

        ids = [json.loads(x)["webhook_id"] for x in path.read_bytes().split()]
        assert ids == [r.webhook_id for r in records]

    async def test_write_failure_is_journal_error(
        self, tmp_path: Path
    ) -> None:
        """A failing write fails the record's future with JournalError."""
        path = tmp_path / "j.jsonl"
        fd = open_journal(path)
        os.close(fd)
        read_only = os.open(path, os.O_RDONLY)
        writer = JournalWriter(read_only, str(path))

        with pytest.raises(JournalError, match="cannot write"):
            await writer.submit(_record("a", "started"))
        await writer.aclose()

    async def test_closed_writer_refuses(self, tmp_path: Path) -> None:
        """A closed writer refuses new records instead of losing them."""
        path = tmp_path / "j.jsonl"
        writer = JournalWriter(open_journal(path), str(path))
        await writer.aclose()
        await writer.aclose()

        with pytest.raises(JournalError, match="closed"):
            writer.submit(_record("a", "started"))


class TestReadJournal:
    async def test_latest_record_wins(self, tmp_path: Path) -> None:
        """A later record for a webhook supersedes every earlier one."""
        path = tmp_path / "j.jsonl"
        await _write(
            path,
            _record("a", "started"),
            _record("a", "unknown"),
            _record("b", "started"),
            _record("b", "rotated", webhook_secret="old"),
            _record("a", "started"),
            _record("a", "rotated", webhook_secret="new"),
        )

        latest = read_journal(path)

        assert latest["a"].webhook_secret == "new"
        assert latest["b"].webhook_secret == "old"

    async def test_torn_last_line(self, tmp_path: Path) -> None:
        """A torn last line, as a killed process leaves, is skipped."""
        path = tmp_path / "j.jsonl"
        await _write(path, _record("a", "rotated", webhook_secret="x"))
        line = _record("b", "rotated", webhook_secret="y").to_line()
        with path.open("ab") as f:
            f.write(line[: len(line) // 2])

        latest = read_journal(path)

        assert set(latest) == {"a"}

    async def test_started_without_outcome(self, tmp_path: Path) -> None:
        """A dangling started record is returned as the latest record."""
        path = tmp_path / "j.jsonl"
        await _write(
            path,
            _record("a", "rotated", webhook_secret="x"),
            _record("a", "started"),
        )

        [record] = read_journal(path).values()

        assert record.outcome == "started"
        assert not record.settled

    def test_not_a_journal(self, tmp_path: Path) -> None:
        """A file with lines but no record is refused, not read as empty."""
        path = tmp_path / "ids.txt"
        path.write_text("wh1\nwh2\n")

        with pytest.raises(JournalError, match="not a rotation journal"):
            read_journal(path)

    def test_empty_file(self, tmp_path: Path) -> None:
        """An empty journal holds no records."""
        path = tmp_path / "j.jsonl"
        path.write_text("")

        assert read_journal(path) == {}
