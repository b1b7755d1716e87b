"""The ``nylas-async verify`` command."""

from __future__ import annotations

import gzip
import hashlib
import hmac
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from nylas_async._cli import main

SECRET = "cli-secret-do-not-print"
OLD = "cli-previous-secret"
BODY = b'{"id":"n1","type":"message.created","data":{"object":{}}}'


def sign(body: bytes, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def run(
    *args: str, stdin: bytes | None = None, env: dict[str, str] | None = None
) -> Result:
    runner = CliRunner(env={"NYLAS_WEBHOOK_SECRET": None} | (env or {}))

    return runner.invoke(main, ["verify", *args], input=stdin)


@pytest.fixture
def body_file(tmp_path: Path) -> Path:
    path = tmp_path / "delivery.json"
    path.write_bytes(BODY)

    return path


class TestVerify:
    def test_valid_file(self, body_file: Path) -> None:
        """A matching signature prints valid and exits 0."""
        result = run(
            "--secret", SECRET, "--signature", sign(BODY), str(body_file)
        )

        assert (result.exit_code, result.stdout) == (0, "valid\n")

    def test_invalid_file(self, body_file: Path) -> None:
        """A signature by another secret prints invalid and exits 1."""
        result = run(
            "--secret", SECRET, "--signature", sign(BODY, OLD), str(body_file)
        )

        assert (result.exit_code, result.stdout) == (1, "invalid\n")

    @pytest.mark.parametrize(
        "file_args",
        [pytest.param([], id="absent"), pytest.param(["-"], id="dash")],
    )
    def test_stdin(self, file_args: list[str]) -> None:
        """The body is read from stdin without FILE or with -."""
        result = run(
            "--secret",
            SECRET,
            "--signature",
            sign(BODY),
            *file_args,
            stdin=BODY,
        )

        assert (result.exit_code, result.stdout) == (0, "valid\n")

    def test_tampered_stdin(self) -> None:
        """One byte more in the body makes it invalid."""
        result = run(
            "--secret", SECRET, "--signature", sign(BODY), stdin=BODY + b"\n"
        )

        assert result.exit_code == 1

    def test_repeated_secret(self, body_file: Path) -> None:
        """--secret may repeat; any one of them matching is enough."""
        result = run(
            "--secret",
            OLD,
            "--secret",
            SECRET,
            "--signature",
            sign(BODY),
            str(body_file),
        )

        assert result.exit_code == 0

    @pytest.mark.parametrize(
        "value",
        [
            pytest.param(SECRET, id="one"),
            pytest.param(f"{OLD} {SECRET}", id="several"),
        ],
    )
    def test_secret_from_environment(
        self, body_file: Path, value: str
    ) -> None:
        """NYLAS_WEBHOOK_SECRET supplies the secrets, space-separated."""
        result = run(
            "--signature",
            sign(BODY),
            str(body_file),
            env={"NYLAS_WEBHOOK_SECRET": value},
        )

        assert (result.exit_code, result.stdout) == (0, "valid\n")

    @pytest.mark.parametrize(
        "signed",
        [
            pytest.param("compressed", id="over-gzip-bytes"),
            pytest.param("inflated", id="over-inflated-bytes"),
        ],
    )
    def test_gzip_body(self, tmp_path: Path, signed: str) -> None:
        """A gzip capture verifies over its bytes or its inflated ones."""
        packed = gzip.compress(BODY)
        path = tmp_path / "delivery.gz"
        path.write_bytes(packed)
        signature = sign(packed if signed == "compressed" else BODY)

        result = run("--secret", SECRET, "--signature", signature, str(path))

        assert result.exit_code == 0

    @pytest.mark.parametrize(
        "signature",
        [
            pytest.param("", id="empty"),
            pytest.param("not hex at all", id="garbage"),
            pytest.param("é" * 64, id="non-ascii"),
        ],
    )
    def test_hostile_signature(self, body_file: Path, signature: str) -> None:
        """A signature that cannot be one is just invalid."""
        result = run(
            "--secret", SECRET, "--signature", signature, str(body_file)
        )

        assert (result.exit_code, result.stdout) == (1, "invalid\n")

    def test_no_secret(self, body_file: Path) -> None:
        """Without any secret it is a usage error, exit 2."""
        result = run("--signature", sign(BODY), str(body_file))

        assert result.exit_code == 2
        assert "NYLAS_WEBHOOK_SECRET" in result.stderr

    def test_missing_file(self, tmp_path: Path) -> None:
        """An unreadable FILE is a usage error, exit 2."""
        result = run(
            "--secret",
            SECRET,
            "--signature",
            sign(BODY),
            str(tmp_path / "nope"),
        )

        assert result.exit_code == 2

    @pytest.mark.parametrize(
        "args",
        [
            pytest.param(["--secret", SECRET], id="valid"),
            pytest.param(["--secret", OLD], id="invalid"),
            pytest.param(["--secret", SECRET, "--secret", ""], id="empty"),
        ],
    )
    def test_secret_never_printed(
        self, body_file: Path, args: list[str]
    ) -> None:
        """No output, error or not, shows a secret."""
        result = run(*args, "--signature", sign(BODY), str(body_file))

        assert SECRET not in result.output
        assert OLD not in result.output
        assert result.exception is None or isinstance(
            result.exception, SystemExit
        )

    def test_directory(self, tmp_path: Path) -> None:
        """A directory as FILE is a usage error, exit 2."""
        result = run("--secret", SECRET, "--signature", "00", str(tmp_path))

        assert result.exit_code == 2

    def test_closed_stdin(self) -> None:
        """A closed stdin is a usage error with a message, not a traceback."""
        code = "from nylas_async._cli import main; main()"
        command = [sys.executable, "-c", code, "verify", "--signature", "00"]

        done = subprocess.run(
            ["sh", "-c", 'exec "$@" <&-', "sh", *command],
            env={**os.environ, "NYLAS_WEBHOOK_SECRET": SECRET},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

        assert done.returncode == 2
        assert "stdin is closed" in done.stderr
        assert "Traceback" not in done.stderr
