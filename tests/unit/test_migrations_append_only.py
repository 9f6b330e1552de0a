"""Applied migrations are append-only: a commit that edits or deletes one fails CI."""
import re
import subprocess

from tests.conftest import ROOT


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout


def test_no_commit_ever_edited_or_removed_a_migration_file():
    history = _git("log", "--format=%H", "--diff-filter=MDR", "--", "services/*/migrations/*.sql",
                   "common/migrations/*.sql")
    assert history.strip() == "", f"commits changed existing migrations: {history.split()}"


def test_migration_files_are_numbered_without_duplicates():
    """Numbers only grow; branches developed side by side take their own ranges (one 004,
    another 010...), so a gap is allowed and a clash is not."""
    for directory in [ROOT / "common" / "migrations", *sorted((ROOT / "services").glob("*/migrations"))]:
        numbers = [int(re.match(r"(\d+)_", p.name).group(1)) for p in sorted(directory.glob("*.sql"))]
        assert numbers == sorted(set(numbers)) and numbers[:1] == [1], directory
