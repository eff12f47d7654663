"""`parse_uuid` is `uuid.UUID` for every text, parsed by asyncpg's C code where it can."""

from __future__ import annotations

import uuid

import pytest

from eventstore.pg import parse_uuid


@pytest.mark.parametrize(
    "text",
    [
        "7d3c6f0e-8a55-4b3e-9d2f-3c1e2a4b5c6d",
        "7D3C6F0E-8A55-4B3E-9D2F-3C1E2A4B5C6D",
        "7d3c6f0e8a554b3e9d2f3c1e2a4b5c6d",
        "{7d3c6f0e-8a55-4b3e-9d2f-3c1e2a4b5c6d}",  # asyncpg refuses it: uuid.UUID reads it
        "urn:uuid:7d3c6f0e-8a55-4b3e-9d2f-3c1e2a4b5c6d",
    ],
)
def test_parse_uuid_is_uuid_uuid_parsed_faster(text: str) -> None:
    parsed, expected = parse_uuid(text), uuid.UUID(text)
    assert isinstance(parsed, uuid.UUID)
    assert parsed == expected and hash(parsed) == hash(expected) and str(parsed) == str(expected)
    assert {expected: "row"}[parsed] == "row"  # a key either way


@pytest.mark.parametrize("text", ["", "not-a-uuid", "7d3c6f0e-8a55-4b3e-9d2f-3c1e2a4b5c6"])
def test_parse_uuid_refuses_what_uuid_uuid_refuses_with_its_error(text: str) -> None:
    with pytest.raises(ValueError, match="badly formed hexadecimal UUID string"):
        uuid.UUID(text)
    with pytest.raises(ValueError, match="badly formed hexadecimal UUID string"):
        parse_uuid(text)
