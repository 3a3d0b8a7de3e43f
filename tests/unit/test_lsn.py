"""``Lsn``: PostgreSQL's ``pg_lsn`` text form, ordering and byte distances."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from router.core._lsn import Lsn

lsns = st.integers(min_value=0, max_value=2**64 - 1).map(Lsn)


@pytest.mark.parametrize(
    ("text", "value", "shown"),
    [
        ("0/0", 0, "0/0"),
        ("16/B374D848", 0x16_B374D848, "16/B374D848"),
        ("16/b374d848", 0x16_B374D848, "16/B374D848"),
        ("00000016/0B374D84", 0x16_0B374D84, "16/B374D84"),  # zero-padded (PostgreSQL 19 style)
        ("FFFFFFFF/FFFFFFFF", 2**64 - 1, "FFFFFFFF/FFFFFFFF"),
        ("1/0", 2**32, "1/0"),
    ],
)
def test_parse_and_show(text: str, value: int, shown: str) -> None:
    lsn = Lsn.parse(text)
    assert lsn == value
    assert isinstance(lsn, Lsn)
    assert str(lsn) == shown
    assert f"{lsn}" == shown
    assert repr(lsn) == f"Lsn('{shown}')"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "/",
        "0/",
        "/0",
        "0//0",
        "0/0/0",
        " 0/0",
        "0/0 ",
        "0/0\n",
        "+1/0",
        "-1/0",
        "0x1/0",
        "1_0/0",
        "123456789/0",  # nine digits: past 32 bits
        "0/123456789",
        "G/0",
        "\u0661/0",  # ARABIC-INDIC DIGIT ONE: int() would take it
        "\uff10/0",  # FULLWIDTH DIGIT ZERO
        "16B374D848",
    ],
)
def test_parse_rejects_what_postgres_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid LSN"):
        Lsn.parse(text)


def test_parse_wants_text() -> None:
    with pytest.raises(TypeError):
        Lsn.parse(b"0/0")  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [-1, 2**64])
def test_out_of_range(value: int) -> None:
    with pytest.raises(ValueError, match="out of range"):
        Lsn(value)


def test_arithmetic_is_the_integers() -> None:
    a, b = Lsn.parse("0/3000"), Lsn.parse("0/1000")
    assert a - b == 0x2000
    assert type(a - b) is int
    assert a.bytes_after(b) == 0x2000
    assert b.bytes_after(a) == 0
    assert max(a, b) is a
    assert Lsn.ZERO == 0
    assert Lsn.MAX == 2**64 - 1
    assert f"{a:d}" == str(0x3000)
    assert f"{a:x}" == "3000"
    assert f"{a:>8}" == "  0/3000"
    assert {a: 1}[Lsn(0x3000)] == 1


@given(lsns)
def test_round_trip(lsn: Lsn) -> None:
    assert Lsn.parse(str(lsn)) == lsn
    assert Lsn.parse(str(lsn).lower()) == lsn
    hi, lo = str(lsn).split("/")
    assert Lsn.parse(f"{hi:0>8}/{lo:0>8}") == lsn


@given(lsns, lsns)
def test_ordering_is_int_ordering(a: Lsn, b: Lsn) -> None:
    assert (a < b) == (int(a) < int(b))
    assert (a == b) == (int(a) == int(b))
    assert a - b == int(a) - int(b)
    assert a.bytes_after(b) == max(0, int(a) - int(b))
    # The text form sorts like the number once the halves are compared numerically.
    ka = tuple(int(part, 16) for part in str(a).split("/"))
    kb = tuple(int(part, 16) for part in str(b).split("/"))
    assert (ka < kb) == (a < b)


@given(st.text(max_size=30))
def test_parse_raises_only_value_error(text: str) -> None:
    try:
        lsn = Lsn.parse(text)
    except ValueError:
        return
    assert 0 <= lsn < 2**64
    assert Lsn.parse(str(lsn)) == lsn
