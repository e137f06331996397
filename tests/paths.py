"""Where things are, for tests that start scripts or read files: one definition, so moving a
test module never silently points it at the wrong folder."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
TESTS = PROJECT_ROOT / "tests"
FAKES = TESTS / "fakes"
SCRIPTS = PROJECT_ROOT / "scripts"
