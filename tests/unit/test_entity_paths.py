"""Entity paths: parsing dotted text and segment lists, and reading along them."""

from __future__ import annotations

from typing import Any

import pytest

from hotmesh_sync.entity.paths import MAX_SEGMENTS, is_index, lookup, parse, parse_optional, resolve
from hotmesh_sync.errors import InvalidPathError


@pytest.mark.parametrize(
    ("path", "segments"),
    [
        ("a", ["a"]),
        ("perspectives.optimistic.score", ["perspectives", "optimistic", "score"]),
        ("items.0.name", ["items", "0", "name"]),
        (["a.b", "c"], ["a.b", "c"]),
        (("x", 0, -1), ["x", "0", "-1"]),
        (
            ["with space", "ünï", "'; DROP TABLE jobs; --"],
            ["with space", "ünï", "'; DROP TABLE jobs; --"],
        ),
        (" a . b ", [" a ", " b "]),
    ],
)
def test_parse_gives_text_segments(path: Any, segments: list[str]) -> None:
    """Dotted text splits at dots; list segments are kept whole, integers become text."""
    assert parse(path) == segments


def test_parse_of_parsed_segments_is_the_same() -> None:
    """A parsed path parses to itself, so it can be handed on and parsed again."""
    segments = parse(["a.b", 3, "c"])
    assert parse(segments) == segments


@pytest.mark.parametrize(
    "path",
    [
        "",
        "a..b",
        ".a",
        "a.",
        ".",
        [],
        (),
        ["a", ""],
        [True],
        ["a", 1.5],
        [None],
        None,
        5,
        {"a": 1},
        b"a.b",
        "a\x00b",
        ["\ud800"],
    ],
)
def test_parse_refuses_empty_or_malformed(path: Any) -> None:
    """Empty, malformed or non-text paths raise InvalidPathError."""
    with pytest.raises(InvalidPathError):
        parse(path)


def test_invalid_path_error_is_a_value_error() -> None:
    """Callers catching ValueError catch a bad path too."""
    with pytest.raises(ValueError):
        parse("a..b")


def test_parse_refuses_too_deep_paths() -> None:
    """A path deeper than MAX_SEGMENTS is refused before it can nest a document that deep."""
    assert len(parse(["k"] * MAX_SEGMENTS)) == MAX_SEGMENTS
    with pytest.raises(InvalidPathError):
        parse(".".join(["k"] * (MAX_SEGMENTS + 1)))


def test_parse_optional_keeps_none() -> None:
    """None means the whole document where a path is optional."""
    assert parse_optional(None) is None
    assert parse_optional("a.b") == ["a", "b"]


@pytest.mark.parametrize(
    ("segment", "expected"),
    [
        ("0", True),
        ("7", True),
        ("123456789", True),
        ("1234567890", False),
        ("01", False),
        ("-1", False),
        ("+1", False),
        (" 1", False),
        ("1.0", False),
        ("a", False),
        ("٣", False),
    ],
)
def test_is_index_accepts_canonical_non_negative_integers(segment: str, expected: bool) -> None:
    """Only canonical decimal integers of up to nine digits index arrays."""
    assert is_index(segment) is expected


def test_resolve_and_lookup() -> None:
    """Integer segments index arrays, and only arrays; anything unresolved is absent."""
    doc = {"items": [{"name": "a"}, None], "0": {"x": 1}, "n": None}
    assert resolve(doc, ["items", "0", "name"]) == (True, "a")
    assert resolve(doc, ["0", "x"]) == (True, 1)
    assert resolve(doc, ["n"]) == (True, None)
    assert resolve(doc, ["items", "1"]) == (True, None)
    assert resolve(doc, ["items", "2"]) == (False, None)
    assert resolve(doc, ["items", "name"]) == (False, None)
    assert resolve(doc, ["items", "0", "name", "deeper"]) == (False, None)
    assert lookup(doc, None) is doc
    assert lookup(doc, ["missing"]) is None
