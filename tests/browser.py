"""Headless Debian Chromium for tests that look at the MLflow UI as a person would.

CI installs chromium (.ci/run). Elsewhere a test that needs it skips, saying how to
install it; under CI=true a missing browser fails the test instead.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

# Flags for a machine without a display or network beyond loopback.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--virtual-time-budget=20000")
INSTALL = "apt-get install -y chromium"


def chromium() -> str:
    """Return Debian's chromium; skip the test without it, or fail under CI."""
    found = shutil.which("chromium")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must provide chromium (.ci/run installs it: {INSTALL})")
        pytest.skip(f"needs Debian's chromium: {INSTALL}")
    return found


def render(url: str, profile: Path, screenshot: Path, height: int = 1000) -> str:
    """Load `url` in a window 1400 pixels wide and `height` tall (the UI draws only the
    charts in view), let its scripts run, save a screenshot; return the rendered DOM."""
    browser = chromium()
    flags = [*FLAGS, f"--window-size=1400,{height}", f"--user-data-dir={profile}"]
    shot = subprocess.run([browser, *flags, f"--screenshot={screenshot}", url],
                          capture_output=True, text=True, timeout=120, check=False)
    assert screenshot.is_file(), shot.stderr[-2000:]
    dom = subprocess.run([browser, *flags, "--dump-dom", url],
                         capture_output=True, text=True, timeout=120, check=True)
    return dom.stdout
