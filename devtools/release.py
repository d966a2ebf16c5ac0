"""`make release VERSION=X.Y.Z`: cut release vX.Y.Z of the template and its platform library.

In a clean checkout of the commit to release (after `make setup`), it checks that the release names its
version, builds the nexus-ai-platform wheel into dist/, dates the CHANGELOG section (`## vX.Y.Z — unreleased`
becomes `## vX.Y.Z — <today, UTC>`), commits that as `Release vX.Y.Z: ...` and creates the annotated tag
vX.Y.Z (its message: the section). Nothing leaves the machine: push the commit and the tag yourself
(`git push origin HEAD vX.Y.Z`); copier, `nexus-template update` and the services' template-update
workflows see a release once the tag is where their `_src_path` points.

It refuses, with one line and exit 1, before changing anything: a version that is not X.Y.Z, uncommitted
or untracked files, a tag vX.Y.Z that exists, a version not newer than the newest release tag, and a release
that does not name its version:
- CHANGELOG.md's newest section is `## vX.Y.Z — unreleased` and says whether services must act
  ("Action needed");
- nexus-ai-platform's version (src/nexus_platform/_version.py) and the tools' (pyproject.toml) are X.Y.Z:
  the library and the tools are released with the template under the same version, and the template's
  requirements pin the library at that version;
- every versioned migration is both a script (migrations/vA_B_C.py, whose text names vA.B.C) and an entry
  of copier.yml's `_migrations` with `version: vA.B.C` running that script, for a version no later than
  X.Y.Z; one added since the newest tag is for X.Y.Z (copier runs a migration only on an update that
  crosses its version: one labelled with an earlier, released version would never run for services already
  past it); and each migration of X.Y.Z is named (`migrations/vX_Y_Z.py`) in the CHANGELOG section and in
  docs/, which say what it does;
- no page of the docs (README.md, docs/) still calls vX.Y.Z unreleased.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import yaml
from packaging.version import InvalidVersion, Version

ROOT = Path(__file__).resolve().parents[1]
CHANGELOG = "CHANGELOG.md"
LIBRARY_VERSION = "nexus-ai-platform/src/nexus_platform/_version.py"
# the tools' distribution (nexus_template), released under the same version
TOOLS = "pyproject.toml"
WHEEL = "nexus_ai_platform-{version}-py3-none-any.whl"
# the services' lock, which pins the library's wheel by its hash
TEMPLATE_LOCK = "template/requirements.lock.jinja"
_PLAIN_VERSION = re.compile(r"^\d+\.\d+\.\d+$")
_MIGRATION_SCRIPT = re.compile(r"^v(\d+)_(\d+)_(\d+)\.py$")


class Refused(Exception):
    """The release cannot be cut; the message says why."""


def git(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=check)


def _release_tags() -> list[Version]:
    versions = []
    for tag in git("tag", "--list", "v*").stdout.split():
        try:
            versions.append(Version(tag))
        except InvalidVersion:
            continue
    return sorted(versions)


def _section(changelog: str, version: str) -> tuple[str, str]:
    """(heading line, body) of the newest CHANGELOG section, which must be vX.Y.Z's, unreleased."""
    sections = re.split(r"(?m)^(?=## )", changelog)
    newest = next((section for section in sections if section.startswith("## ")), "")
    heading, _, body = newest.partition("\n")
    if heading != f"## v{version} — unreleased":
        raise Refused(
            f"{CHANGELOG}'s newest section is {heading or 'missing'!r}, not '## v{version} — unreleased'"
        )
    if not re.search(r"(?m)^Action needed", body):
        raise Refused(
            f"{CHANGELOG}'s v{version} section does not say whether services must act (Action needed)"
        )
    return heading, body


def _check_versions(version: str) -> None:
    """The library and the maintainers' tools (`pip show nexus-template`) carry the release's version."""
    for relative, pattern in (
        (LIBRARY_VERSION, r'^__version__ = "([^"]+)"$'),
        (TOOLS, r'^version = "([^"]+)"$'),
    ):
        found = re.search(pattern, (ROOT / relative).read_text(), re.MULTILINE)
        if not found or found[1] != version:
            raise Refused(f"{relative} says {found[1] if found else 'no version'}, not {version}")


def _versioned_migrations() -> dict[str, list[str]]:
    """copier.yml's versioned migrations: version -> the command's parts."""
    config = yaml.safe_load((ROOT / "copier.yml").read_text())
    found: dict[str, list[str]] = {}
    for migration in config.get("_migrations", []):
        if "version" in migration:
            found[str(migration["version"])] = [str(part) for part in migration["command"]]
    return found


def _in_tag(tag: Version, relative: str) -> bool:
    return git("cat-file", "-e", f"v{tag}:{relative}", check=False).returncode == 0


def _check_migrations(version: str, body: str, newest_tag: Version | None) -> None:
    entries = _versioned_migrations()
    scripts = {}
    for path in sorted((ROOT / "migrations").glob("v*.py")):
        if numbers := _MIGRATION_SCRIPT.match(path.name):
            scripts[f"v{'.'.join(numbers.groups())}"] = path
    for tag in sorted(entries.keys() | scripts.keys(), key=Version):
        script = scripts.get(tag)
        relative = f"migrations/{tag.replace('.', '_')}.py"
        if script is None or not any(part.endswith(relative) for part in entries.get(tag, [])):
            raise Refused(
                f"migration {tag}: {relative} and a copier.yml `_migrations` entry `version: {tag}` running it go together"
            )
        if tag not in script.read_text():
            raise Refused(f"{relative} does not name its version {tag}")
        if Version(tag) > Version(version):
            raise Refused(f"{relative} is for {tag}, after this release v{version}")
        if newest_tag is not None and Version(tag) != Version(version) and not _in_tag(newest_tag, relative):
            raise Refused(
                f"{relative} is new since v{newest_tag} but for {tag}: a migration of this release is for v{version}"
            )
        if Version(tag) == Version(version):
            if relative not in body:
                raise Refused(f"{CHANGELOG}'s v{version} section does not name {relative}")
            if not any(relative in page.read_text() for page in (ROOT / "docs").rglob("*.md")):
                raise Refused(
                    f"no page of docs/ names {relative} (what it does, what the service's owners see)"
                )


def _check_docs(version: str) -> None:
    unreleased = re.compile(rf"v{re.escape(version)}\b[^\n]{{0,12}}\bunreleased\b", re.IGNORECASE)
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        if unreleased.search(page.read_text()):
            raise Refused(f"{page.relative_to(ROOT)} still calls v{version} unreleased")


def check(version: str) -> tuple[str, str]:
    """Every refusal, before anything is written; the CHANGELOG section's (heading, body)."""
    if not _PLAIN_VERSION.match(version):
        raise Refused(f"VERSION must be X.Y.Z (make release VERSION=0.5.0), not {version!r}")
    if dirty := git("status", "--porcelain", "--untracked-files=all").stdout.strip():
        raise Refused(
            f"the work tree has uncommitted or untracked files: {' '.join(line[3:] for line in dirty.splitlines())}"
        )
    if git("rev-parse", "--verify", "--quiet", f"refs/tags/v{version}", check=False).returncode == 0:
        raise Refused(f"the tag v{version} exists already")
    tags = _release_tags()
    newest = tags[-1] if tags else None
    if newest is not None and Version(version) <= newest:
        raise Refused(f"v{version} is not newer than the newest release tag v{newest}")
    heading, body = _section((ROOT / CHANGELOG).read_text(), version)
    _check_versions(version)
    _check_migrations(version, body, newest)
    _check_docs(version)
    return heading, body


def release(version: str) -> Path:
    """Check, build the wheel, date the CHANGELOG, commit, tag; the wheel's path."""
    heading, body = check(version)
    subprocess.run([sys.executable, "-m", "devtools.wheel"], cwd=ROOT, check=True)
    wheel = ROOT / "dist" / WHEEL.format(version=version)
    if not wheel.is_file():
        raise Refused(f"the wheel build wrote no {wheel.relative_to(ROOT)}")
    # services install it with --require-hashes: a lock without this wheel's hash would refuse the release
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if f"sha256:{digest}" not in (ROOT / TEMPLATE_LOCK).read_text():
        raise Refused(
            f"{TEMPLATE_LOCK} lacks the hash of {wheel.name}: run `make lock`, commit, then release"
        )
    today = datetime.now(UTC).date().isoformat()
    changelog = ROOT / CHANGELOG
    before = changelog.read_text()
    changelog.write_text(before.replace(heading, f"## v{version} — {today}", 1))
    try:
        git(
            "commit",
            "--quiet",
            "--message",
            f"Release v{version}: {CHANGELOG} dated {today}",
            "--",
            CHANGELOG,
        )
    except subprocess.CalledProcessError as error:
        changelog.write_text(before)  # nothing of the release is left behind
        raise Refused(f"git commit failed: {error.stderr.strip()}") from error
    notes = f"nexus-template v{version} ({today})\n\n{body.strip()}\n"
    tagged = subprocess.run(
        ["git", "tag", "--annotate", f"v{version}", "--cleanup=verbatim", "--file=-"],
        cwd=ROOT,
        input=notes,
        capture_output=True,
        text=True,
        check=False,
    )
    if tagged.returncode != 0:  # the release commit goes too (check() proved the tree clean before it)
        git("reset", "--quiet", "--hard", "HEAD~1")
        raise Refused(f"git tag failed, the release commit is undone: {tagged.stderr.strip()}")
    return wheel


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make release", description=__doc__.split("\n\n")[0])
    parser.add_argument("version", metavar="X.Y.Z")
    args = parser.parse_args(argv)
    try:
        wheel = release(args.version)
    except Refused as refused:
        print(f"release: {refused}", file=sys.stderr)
        return 1
    print(
        f"released v{args.version}: {CHANGELOG} dated and committed, tag v{args.version}, {wheel.relative_to(ROOT)}"
    )
    print(f"publish it: git push origin HEAD v{args.version} (and the wheel where services install it from)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
