"""Read-your-writes tokens: round trip, refusal of damaged and foreign tokens, merging."""

from __future__ import annotations

import base64
import contextlib
import re
import struct
import urllib.parse
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from router.core._lsn import Lsn
from router.core._token import (
    TOKEN_PREFIX,
    ForeignToken,
    InvalidToken,
    Position,
    decode,
    encode,
)
from router.errors import RouterError

SYSTEM_ID = 7_312_345_678_901_234_567
u64 = st.integers(min_value=0, max_value=2**64 - 1)
positions = st.builds(Position, u64, u64.map(Lsn))


def pos(lsn: str, system_id: int = SYSTEM_ID) -> Position:
    return Position(system_id, Lsn.parse(lsn))


def test_token_shape() -> None:
    token = encode(pos("16/B374D848"))
    assert token.startswith(TOKEN_PREFIX)
    assert len(token) == 30
    assert re.fullmatch(r"[A-Za-z0-9._-]+", token)
    assert urllib.parse.quote(token, safe="") == token  # URL-, header- and cookie-safe
    assert decode(token) == pos("16/B374D848")
    assert decode(token, system_id=SYSTEM_ID) == pos("16/B374D848")


@given(positions)
def test_round_trip(position: Position) -> None:
    token = encode(position)
    assert decode(token) == position
    assert decode(token, system_id=position.system_id) == position
    assert encode(decode(token)) == token


@given(positions, positions)
def test_tokens_equal_iff_positions_equal(a: Position, b: Position) -> None:
    assert (encode(a) == encode(b)) == (a == b)


def test_foreign_cluster_is_refused() -> None:
    token = encode(pos("0/3000", system_id=1))
    with pytest.raises(ForeignToken) as info:
        decode(token, system_id=2)
    assert info.value.expected == 2
    assert info.value.found == 1
    assert isinstance(info.value, InvalidToken)


def test_errors_are_router_and_value_errors() -> None:
    with pytest.raises(InvalidToken) as info:
        decode("nope")
    assert isinstance(info.value, RouterError)
    assert isinstance(info.value, ValueError)
    assert info.value.token == "nope"


@pytest.mark.parametrize(
    ("token", "problem"),
    [
        ("", "malformed"),
        ("r1.", "malformed"),
        ("r1.AAAAAAAAAAAAAAAAAAAAAAAAAAA=", "malformed"),
        ("r1.AAAAAAAAAAAAAAAAAAAAAAAAAA+", "malformed"),
        ("R1.AAAAAAAAAAAAAAAAAAAAAAAAAAA", "malformed"),
        ("r3.AAAAAAAAAAAAAAAAAAAAAAAAAAA", "unsupported version"),
        ("x" * 10_000, "malformed"),
    ],
)
def test_malformed(token: str, problem: str) -> None:
    with pytest.raises(InvalidToken, match=problem):
        decode(token)


def test_damage_is_caught() -> None:
    token = encode(pos("16/B374D848"))
    for i in range(len(TOKEN_PREFIX), len(token)):
        for ch in "AbZ9-_":
            damaged = token[:i] + ch + token[i + 1 :]
            if damaged != token:
                with pytest.raises(InvalidToken):
                    decode(damaged)
    with pytest.raises(InvalidToken):
        decode(token[:-1])
    with pytest.raises(InvalidToken):
        decode(token + "A")


@pytest.mark.parametrize("value", [None, 42, b"r1.AAAA", ["r1."], 3.5])
def test_non_strings(value: object) -> None:
    with pytest.raises(InvalidToken, match="expected a string"):
        decode(value)


@given(st.one_of(st.text(), st.binary(), st.integers(), st.none()))
def test_arbitrary_input_raises_only_invalid_token(value: object) -> None:
    with contextlib.suppress(InvalidToken):
        decode(value)


@given(
    st.text(
        alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
        min_size=27,
        max_size=27,
    )
)
def test_random_bodies_are_refused_or_round_trip(body: str) -> None:
    try:
        position = decode(TOKEN_PREFIX + body)
    except InvalidToken:
        return
    assert encode(position) == TOKEN_PREFIX + body


def test_max_keeps_the_later_position() -> None:
    early, late = pos("0/1000"), pos("0/2000")
    assert early.max(late) is late
    assert late.max(early) is late
    assert late.max(None) is late
    assert late.max(pos("0/2000")) is late


def test_max_refuses_to_mix_clusters() -> None:
    with pytest.raises(ForeignToken):
        pos("0/1000", system_id=1).max(pos("0/2000", system_id=2))


@given(positions, u64.map(Lsn), u64.map(Lsn))
def test_max_is_a_join(base: Position, x: Lsn, y: Lsn) -> None:
    a, b = Position(base.system_id, x), Position(base.system_id, y)
    assert a.max(b) == b.max(a)
    assert a.max(b).lsn == max(x, y)
    assert a.max(a) == a


def test_system_id_range() -> None:
    with pytest.raises(ValueError, match="system_id"):
        Position(-1, Lsn(0))
    with pytest.raises(ValueError, match="system_id"):
        Position(2**64, Lsn(0))


def test_str() -> None:
    assert str(pos("16/B374D848", system_id=7)) == "16/B374D848 on cluster 7"


# -- version 2: a position that may be behind its holder's commits -------------------------


@given(positions)
def test_an_uncertain_position_round_trips_as_version_2(position: Position) -> None:
    uncertain = Position(position.system_id, position.lsn, uncertain=True)
    token = encode(uncertain)
    assert token.startswith("r2.")
    assert len(token) == 31
    assert decode(token) == uncertain
    assert decode(token) != position  # one position, one token: the flag is part of it
    assert encode(position).startswith("r1.")


def test_version_2_with_no_flag_or_an_unknown_one_is_refused() -> None:
    """A clear flag has exactly one token, version 1; unknown bits are refused, not
    dropped."""
    body = struct.pack(">QQB", 7, 42, 0)
    for flags in (0, 2, 3):
        body = struct.pack(">QQB", 7, 42, flags)
        raw = body + struct.pack(">I", zlib.crc32(body))
        token = "r2." + base64.urlsafe_b64encode(raw).decode().rstrip("=")
        with pytest.raises(InvalidToken, match="malformed"):
            decode(token)


def test_max_keeps_uncertainty() -> None:
    sure = Position(1, Lsn(100))
    unsure = Position(1, Lsn(50), uncertain=True)
    assert sure.max(unsure) == Position(1, Lsn(100), uncertain=True)
    assert unsure.max(sure) == Position(1, Lsn(100), uncertain=True)
    assert "uncertain" in str(unsure)
