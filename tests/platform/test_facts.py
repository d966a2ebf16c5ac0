"""release/service.env is read one way only: what CI's sed and kustomize would read differently is refused,
each error naming its line."""

from __future__ import annotations

import pytest
from nexus_platform._config.facts import FactsError, parse_facts

GOOD = "SERVICE_VERSION=1.2.3\nSERVICE_DESCRIPTION=Speech\nSERVICE_OWNER=voice-team\n"


def test_a_good_file_reads_whole() -> None:
    facts = parse_facts(GOOD + "# offered\nSERVICE_CAPABILITIES=audio.speech, rerank\n")
    assert (facts.service_version, facts.service_owner) == ("1.2.3", "voice-team")
    assert facts.service_capabilities == ("audio.speech", "rerank")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (GOOD + "SERVICE_VERSION=1.2.4\n", "release/service.env:4: SERVICE_VERSION is already set on line 1"),
        (
            GOOD.replace("1.2.3", "1.2.3 "),
            "release/service.env:1: SERVICE_VERSION has spaces around its value",
        ),
        (
            GOOD + "SERVICE_CAPABILITIES=rerank,rerank\n",
            "release/service.env:4: SERVICE_CAPABILITIES lists rerank twice",
        ),
        (
            GOOD.replace("1.2.3", "v1.2.3"),
            "release/service.env:1: SERVICE_VERSION must be a semantic version",
        ),
        (
            GOOD.replace("voice-team", "Voice_Team"),
            "release/service.env:3: SERVICE_OWNER must be a team name",
        ),
        (
            GOOD.replace("1.2.3", '"1.2.3"'),
            "release/service.env:1: SERVICE_VERSION must not be quoted: kustomize reads it too and keeps the "
            'quotes (got "1.2.3", write SERVICE_VERSION=1.2.3)',
        ),
        (
            GOOD.replace("voice-team", "'voice-team'"),
            "release/service.env:3: SERVICE_OWNER must not be quoted",
        ),
        (GOOD + "export X\n", "release/service.env:4: expected KEY=value"),
        (GOOD.replace("SERVICE_OWNER=voice-team\n", ""), "missing required field `SERVICE_OWNER`"),
    ],
    ids=[
        "repeated",
        "spaces",
        "capability twice",
        "not semver",
        "owner",
        "version quoted",
        "owner quoted",
        "not key=value",
        "missing",
    ],
)
def test_a_file_other_readers_would_misread_is_refused_naming_the_line(text: str, message: str) -> None:
    with pytest.raises(FactsError) as raised:
        parse_facts(text)
    assert message in str(raised.value)
