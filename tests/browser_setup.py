"""Make sure the browser tests have Debian's Chromium (Playwright's own download
cannot run here). Run by `make test` before pytest; a no-op once installed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

CHROMIUM = "/usr/bin/chromium"


def main() -> int:
    if os.path.exists(CHROMIUM):
        return 0
    apt = shutil.which("apt-get")
    if apt is None:
        print("browser tests will be skipped: no apt-get to install chromium", file=sys.stderr)
        return 0
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([*sudo, apt, "update", "-qq"], check=False, env=env)
    result = subprocess.run([*sudo, apt, "install", "-y", "-qq", "chromium"], check=False, env=env)
    if result.returncode != 0:
        print("browser tests will be skipped: chromium could not be installed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
