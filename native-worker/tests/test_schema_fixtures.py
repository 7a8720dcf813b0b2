"""The shared fixtures of schema/fixtures: the same verdicts as the TypeScript engine's test."""

import json
from pathlib import Path

import pytest

from riemannlora.schemas import validate

FIXTURES = Path(__file__).resolve().parents[2] / "schema" / "fixtures"
CASES = sorted(FIXTURES.glob("*/*/*.json"))


def test_there_are_enough_fixtures():
    assert len([c for c in CASES if c.parts[-2] == "invalid"]) >= 20
    assert len([c for c in CASES if c.parts[-2] == "valid"]) >= 5


@pytest.mark.parametrize("case", CASES, ids=lambda p: "/".join(p.parts[-3:]))
def test_fixture_verdict(case: Path):
    schema = {"config": "config", "event": "event"}[case.parts[-3]]
    doc = json.loads(case.read_text())
    errors = validate(schema, doc["data"])
    if case.parts[-2] == "valid":
        assert errors == [], f"{case.name}: expected valid, got {[str(e) for e in errors]}"
    else:
        assert errors, f"{case.name}: expected invalid ({doc['description']})"
        paths = {e.path for e in errors}
        for expected in doc["errors"]:
            assert expected in paths, (
                f"{case.name}: no error names {expected}; got {[str(e) for e in errors]}"
            )
