"""The report as PDF, printed by headless Chromium (no further library or system dependency
than the browser the HTML is meant for)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from kzai_guard.errors import ConfigurationError

__all__ = ["PDF_TIMEOUT_SECONDS", "print_pdf"]

PDF_TIMEOUT_SECONDS = 120
"""How long Chromium may take to print one report."""
_BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def print_pdf(html: str, out: Path) -> None:
    """Write ``html`` to ``out`` as PDF. The browser runs with networking pointed nowhere (the
    report needs none); raises :class:`ConfigurationError` when no Chromium is installed."""
    browser = next((path for name in _BROWSERS if (path := shutil.which(name))), None)
    if browser is None:
        raise ConfigurationError(
            "--pdf prints with headless Chromium, which is not installed; install it "
            "(Debian: apt-get install chromium) or write HTML only"
        )
    with tempfile.TemporaryDirectory(prefix="kzai-report-") as work:
        page = Path(work) / "report.html"
        page.write_text(html, encoding="utf-8")
        done = subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                f"--user-data-dir={work}/profile",
                "--proxy-server=127.0.0.1:9",
                "--host-resolver-rules=MAP * ~NOTFOUND",
                "--no-pdf-header-footer",
                f"--print-to-pdf={out.resolve()}",
                page.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=PDF_TIMEOUT_SECONDS,
            check=False,
        )
    if done.returncode != 0 or not out.is_file():
        raise ConfigurationError(f"Chromium could not print the report: {done.stderr.strip()}")
