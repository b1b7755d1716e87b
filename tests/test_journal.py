"""The rotation journal: its file, its records and its reader."""

from __future__ import annotations

import asyncio
import datetime as dt
import errno
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import attrs
import pytest

from nylas_async import JournalError, JournalRecord, read_journal
from nylas_async._journal import (
    JournalWriter,
    UnencodableRecordError,
    open_journal,
)

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

    @pytest.mark.parametrize(
        "fields",
        [
            pytest.param({"webhook_secret": "new\ud800"}, id="secret"),
            pytest.param({"webhook_id": "wh\udcff"}, id="id"),
        ],
    )
    def test_unencodable(self, fields: dict[str, str]) -> None:
        """
        An id or secret holding a lone surrogate cannot be written: a
        JournalError that holds neither the secret nor its encoding
        error, which would.
        """
        record = attrs.evolve(
            _record("wh1", "rotated", webhook_secret=SECRET), **fields
        )

        with pytest.raises(UnencodableRecordError) as caught:
            record.to_line()

        assert SECRET not in str(caught.value)
        assert caught.value.__context__ is None
        assert isinstance(caught.value, JournalError)

    def test_descriptions_escaped(self) -> None:
        """Error texts holding a lone surrogate are written escaped."""
        record = _record(
            "wh1",
            "failed",
            error="id 'a\udcff' is malformed",
            callback_error="E: \ud800",
            request_id="r\ud800",
        )

        read = JournalRecord.from_json(json.loads(record.to_line()))

        assert read is not None
        assert read.error == "id 'a\\udcff' is malformed"
        assert read.callback_error == "E: \\ud800"
        assert read.request_id == "r\\ud800"


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
        """A directory is refused with a JournalError naming it."""
        with pytest.raises(JournalError, match="cannot open the journal"):
            open_journal(tmp_path)

    def test_missing_directory(self, tmp_path: Path) -> None:
        """A path in a directory that does not exist is a JournalError."""
        path = tmp_path / "no" / "j.jsonl"

        with pytest.raises(JournalError, match=str(path)):
            open_journal(path)

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

    def test_disk_full(self, tmp_path: Path) -> None:
        """
        A write that hits a full disk (a file size limit here, in a
        process of its own) keeps the whole lines it wrote, fails the
        rest, cuts the torn line off, and refuses every later record.
        """
        path = tmp_path / "j.jsonl"

        result = _run_script(_DISK_FULL, str(path))

        results = result["results"]
        assert results[:2] == ["ok", "ok"]
        assert all("File too large" in r for r in results[2:])
        assert "cannot write the journal" in result["later"]
        assert path.read_bytes().endswith(b"\n")
        assert sorted(read_journal(path)) == ["wh0", "wh1", "wh2"]

    async def test_failed_fsync(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """
        After a failed fsync nothing written is trusted: every record of
        that write fails, and so does every later one.
        """
        path = tmp_path / "j.jsonl"
        writer = JournalWriter(open_journal(path), str(path))

        def fsync(fd: int) -> None:
            raise OSError(errno.EIO, os.strerror(errno.EIO))

        monkeypatch.setattr(os, "fsync", fsync)
        futures = [writer.submit(_record(f"wh{i}", "started")) for i in "ab"]
        outcomes = await asyncio.gather(*futures, return_exceptions=True)
        monkeypatch.undo()

        assert all(isinstance(o, JournalError) for o in outcomes)
        assert "Input/output error" in str(outcomes[0])
        with pytest.raises(JournalError, match="cannot write"):
            writer.submit(_record("c", "started"))
        await writer.aclose()

    async def test_cancelled_writer_fails_queue(self, tmp_path: Path) -> None:
        """A writer task cancelled before it ran fails what was queued."""
        path = tmp_path / "j.jsonl"
        writer = JournalWriter(open_journal(path), str(path))
        future = writer.submit(_record("a", "started"))
        assert writer._task is not None
        writer._task.cancel()

        async with asyncio.timeout(5):
            with pytest.raises(JournalError, match="stopped"):
                await future
        with pytest.raises(JournalError, match="stopped"):
            writer.submit(_record("b", "started"))
        await writer.aclose()

    async def test_unencodable_leaves_writer_working(
        self, tmp_path: Path
    ) -> None:
        """A record that cannot be encoded is refused alone."""
        path = tmp_path / "j.jsonl"
        bad = _record("a", "rotated", webhook_secret="x\ud800")

        writer = JournalWriter(open_journal(path), str(path))
        with pytest.raises(UnencodableRecordError):
            writer.submit(bad)
        await writer.submit(_record("b", "started"))
        await writer.aclose()

        assert list(read_journal(path)) == ["b"]

    async def test_close_writes_what_is_queued(self, tmp_path: Path) -> None:
        """Closing right after a submit writes the record and returns."""
        path = tmp_path / "j.jsonl"
        writer = JournalWriter(open_journal(path), str(path))
        future = writer.submit(_record("a", "started"))

        async with asyncio.timeout(5):
            await writer.aclose()

        assert future.done()
        assert list(read_journal(path)) == ["a"]

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

    async def test_deeply_nested_line(self, tmp_path: Path) -> None:
        """A line nested too deeply to parse is skipped like garbage."""
        path = tmp_path / "j.jsonl"
        await _write(path, _record("a", "started"))
        with path.open("ab") as f:
            f.write(b"[" * 100_000 + b"\n")
        await _write(path, _record("b", "rotated", webhook_secret="y"))

        assert sorted(read_journal(path)) == ["a", "b"]

    def test_only_a_torn_line(self, tmp_path: Path) -> None:
        """A journal killed during its first write reads as empty."""
        path = tmp_path / "j.jsonl"
        path.write_bytes(b'{"webhook_id":"a","outc')

        assert read_journal(path) == {}

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


_DISK_FULL = """
import asyncio, datetime as dt, json, os, resource, signal, sys
from nylas_async._journal import JournalError, JournalRecord, JournalWriter
from nylas_async._journal import open_journal

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
path = sys.argv[1]

def record(number):
    return JournalRecord(
        webhook_id=f"wh{number}", outcome="rotated", webhook_secret="s" * 40,
        time=dt.datetime(2025, 1, 2, tzinfo=dt.UTC),
    )

async def main():
    writer = JournalWriter(open_journal(path), path)
    await writer.submit(record(0))
    line = len(record(1).to_line())
    limit = os.path.getsize(path) + 2 * line + line // 2
    hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    futures = [writer.submit(record(n)) for n in range(1, 6)]
    results = []
    for future in futures:
        try:
            await future
            results.append("ok")
        except JournalError as exc:
            results.append(str(exc))
    try:
        writer.submit(record(9))
        later = "accepted"
    except JournalError as exc:
        later = str(exc)
    await writer.aclose()
    print(json.dumps({"results": results, "later": later}))

asyncio.run(main())
"""


def _run_script(script: str, *args: str) -> Any:
    """Run *script* in a Python process of its own; return its JSON."""
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr

    return json.loads(done.stdout)
