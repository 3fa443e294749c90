"""Headless Debian Chromium for tests that look at the MLflow UI as a person would."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

# Flags for a machine without a display or network beyond loopback.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1400,1000", "--virtual-time-budget=20000")


# apt-get must never wait for an answer: no prompt, no stdin, and a time limit per step
# that leaves the test room within pytest-timeout's 600 s.
APT_ENV = {"DEBIAN_FRONTEND": "noninteractive"}
APT_TIMEOUT_SECONDS = 240


def chromium() -> str:
    """Return Debian's chromium, installing it with apt-get when missing and allowed."""
    found = shutil.which("chromium")
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq",
                                                        "chromium"]):
            subprocess.run(command, check=True, capture_output=True, stdin=subprocess.DEVNULL,
                           env={**os.environ, **APT_ENV}, timeout=APT_TIMEOUT_SECONDS)
        found = shutil.which("chromium")
    if found is None:
        pytest.fail("this test needs Debian's chromium: apt-get install chromium")
    return found


def render(url: str, profile: Path, screenshot: Path) -> str:
    """Load `url`, let its scripts run, save a screenshot; return the rendered DOM."""
    browser = chromium()
    shot = subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}",
                           f"--screenshot={screenshot}", url],
                          capture_output=True, text=True, timeout=120, check=False)
    assert screenshot.is_file(), shot.stderr[-2000:]
    dom = subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
                         capture_output=True, text=True, timeout=120, check=True)
    return dom.stdout
