"""The demo and fake-server commands."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

from click.testing import CliRunner

from nylas_async._cli import main


class TestDemo:
    def test_rotates_300_under_faults(self) -> None:
        """The demo rotates 300 destinations under faults, all matching."""
        result = CliRunner().invoke(
            main, ["demo", "--count", "300", "--seed", "11"]
        )

        assert result.exit_code == 0, result.output
        assert "All 300 secrets rotated and matching" in result.output
        assert re.search(r"retries after \w+", result.output)

    def test_bad_option_is_a_usage_error(self) -> None:
        """An out-of-range option exits 2 with a message, no traceback."""
        result = CliRunner().invoke(main, ["demo", "--count", "0"])

        assert result.exit_code == 2
        assert "Traceback" not in result.output


class TestFakeServer:
    def test_serves_until_sigterm(self) -> None:
        """fake-server prints its URL, serves, and stops on SIGTERM."""
        env = {**os.environ, "NYLAS_API_KEY": "cli-test-key"}
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "nylas_async",
                "fake-server",
                "--port",
                "0",
                "--seed-webhooks",
                "2",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            assert proc.stdout is not None
            deadline = time.monotonic() + 20
            line = ""
            while "listening on" not in line and time.monotonic() < deadline:
                line = proc.stdout.readline()
            url = line.rsplit(" ", 1)[-1].strip()
            assert url.startswith("http://127.0.0.1:")
        finally:
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=20)

        assert proc.returncode == 0, err
        assert "cli-test-key" not in out + err
