"""`make wheel`: build the nexus-ai-platform wheel into dist/, reproducibly.

The same commit gives the same bytes (hatchling's reproducible builds: fixed timestamps, sorted entries),
so the hash that template/requirements.lock.jinja carries for nexus-ai-platform is the hash of the wheel a
release publishes, and of the one built here from that release's checkout. Where no package index has
this release, services install it from dist/ through pip's PIP_FIND_LINKS (README.md, "The platform
library").
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLATFORM = ROOT / "nexus-ai-platform"
DIST = ROOT / "dist"


def build_wheel(destination: Path = DIST, platform: Path = PLATFORM) -> Path:
    """Build the wheel of `platform` (this checkout's library, or a release's source) into `destination`
    (replacing an older build of the same version); its path."""
    destination.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        subprocess.run(
            [sys.executable, "-m", "hatchling", "build", "--target", "wheel", "--directory", scratch],
            cwd=platform,
            check=True,
            capture_output=True,
            text=True,
        )
        (built,) = Path(scratch).glob("*.whl")
        target = destination / built.name
        target.write_bytes(built.read_bytes())
    return target


def add_to_image_context(service: Path) -> Path:
    """Put this checkout's wheel into `service`'s wheels/ folder, where its Dockerfile installs from when
    no index has the release (the generated README, "Setup"); the wheel's path there."""
    return build_wheel(service / "wheels")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


if __name__ == "__main__":
    wheel = build_wheel()
    print(f"{wheel.relative_to(ROOT)} sha256:{sha256(wheel)}")
