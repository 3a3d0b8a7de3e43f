"""router.web's pure parts: signing, the carrier's reading and answering, the shared floor's
verdicts, and the job tokens. No server, no database."""

from __future__ import annotations

import subprocess
import sys

import pytest

from router._context import SHARED_FLOOR, SharedFloor, Start, attach
from router._scope import Scope
from router.core import (
    Consistency,
    Health,
    Lsn,
    NodeHealth,
    Position,
    Role,
    Topology,
    WalHistory,
)
from router.core import encode_token as encode
from router.errors import ConfigurationError
from router.web import Carrier, Signer, job_token, resume

SECRET = "unit-test-secret-0123456789"
SYSTEM = 7_300_000_000_000_000_001
NOW = 1_800_000_000.0


def carrier(**options: object) -> Carrier:
    return Carrier(secret=SECRET, **options)  # type: ignore[arg-type]


def signed(lsn: int, *, issued: float = NOW, system: int = SYSTEM, secret: str = SECRET) -> str:
    return Signer(secret).sign(encode(Position(system, Lsn(lsn))), int(issued))


def topology(primary_lsn: int | None, *replays: int | None) -> Topology:
    nodes = [NodeHealth(name="primary", role=Role.PRIMARY, health=Health.UP)]
    nodes += [
        NodeHealth(
            name=f"replica{i}",
            role=Role.REPLICA,
            health=Health.UP,
            admitted=True,
            replay_lsn=None if lsn is None else Lsn(lsn),
        )
        for i, lsn in enumerate(replays, 1)
    ]
    wal = WalHistory() if primary_lsn is None else WalHistory("primary", ((0.0, Lsn(primary_lsn)),))
    return Topology(tuple(nodes), wal=wal)


# -- signing -------------------------------------------------------------------------------


def test_a_signed_position_verifies_and_keeps_its_issue_time() -> None:
    value = signed(1000)
    found = Signer(SECRET).verify(value)
    assert found is not None
    assert found.token == encode(Position(SYSTEM, Lsn(1000)))
    assert found.issued_at == int(NOW)
    assert set(value) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


@pytest.mark.parametrize(
    "tamper",
    [
        lambda v: v.replace("r1.", "r1.A", 1)[: len(v)],  # another position
        lambda v: v.rsplit(".", 2)[0] + f".{int(NOW) + 1}." + v.rsplit(".", 1)[1],  # issue time
        lambda v: v[:-1] + ("A" if v[-1] != "A" else "B"),  # the MAC
        lambda v: v[:-3],  # truncated
        lambda v: v + "x",
        lambda v: "",
        lambda v: "garbage",
        lambda v: "a.b.c",
        lambda v: "é" * 40,
        lambda v: v * 10,
    ],
)
def test_anything_tampered_with_does_not_verify(tamper: object) -> None:
    value = tamper(signed(1000))  # type: ignore[operator]
    assert Signer(SECRET).verify(value) is None


def test_another_secret_does_not_verify_and_rotation_keeps_old_values_valid() -> None:
    old = signed(1000, secret="the-old-secret-0123456789")
    assert Signer(SECRET).verify(old) is None
    rotated = Signer([SECRET, "the-old-secret-0123456789"])
    assert rotated.verify(old) is not None
    assert Signer(SECRET).verify(rotated.sign("r1.x", 5)) is not None  # the first one signs


def test_a_short_secret_is_refused_and_never_shown() -> None:
    with pytest.raises(ConfigurationError, match="secret") as caught:
        Signer("short")
    assert "short" not in str(caught.value)
    assert SECRET not in repr(Signer(SECRET))
    assert SECRET not in repr(carrier())


# -- the request ---------------------------------------------------------------------------


def test_a_cookie_among_others_is_read() -> None:
    value = signed(1000)
    incoming = carrier().read(f"a=1; router_position={value}; b=2", None, NOW + 1)
    assert incoming.source == "cookie"
    assert incoming.position == Position(SYSTEM, Lsn(1000))
    assert incoming.issued_at == NOW


def test_the_header_wins_over_the_cookie() -> None:
    incoming = carrier().read(f"router_position={signed(1000)}", signed(2000), NOW)
    assert incoming.source == "header"
    assert incoming.position is not None
    assert incoming.position.lsn == 2000


@pytest.mark.parametrize(
    ("value", "now", "problem"),
    [
        (signed(1000, secret="someone-elses-secret-000"), NOW, "forged"),
        ("r1.AAAAAAAAAAAAAAAAAAAAAAAAAAA.1800000000.AAAAAAAAAAAAAAAAAAAAAA", NOW, "forged"),
        ("%%%", NOW, "forged"),
        (signed(1000), NOW + 61, "expired"),
        (signed(1000, issued=NOW + 3600), NOW, "from the future"),
        (Signer(SECRET).sign("r1.not-a-token", int(NOW)), NOW, "malformed"),
    ],
)
def test_what_does_not_verify_is_ignored_with_a_reason(
    value: str, now: float, problem: str
) -> None:
    incoming = carrier().read(f"router_position={value}", None, now)
    assert incoming.source == "cookie"
    assert incoming.position is None
    assert incoming.problem == problem


def test_no_carrier_is_nothing() -> None:
    assert carrier().read(None, None, NOW).source is None
    assert carrier().read("other=1", None, NOW).source is None
    assert carrier(header=None).read(None, signed(1), NOW).source is None


# -- the response --------------------------------------------------------------------------


class _Cluster:
    def __init__(self, system_id: int | None) -> None:
        self.system_id = system_id

    topology = topology(5000, 5000)


def committed(start: Position | None, lsn: int, *, issued: float | None = NOW) -> SharedFloor:
    shared = SharedFloor(start, issued_at=issued)
    shared._join(_Cluster(SYSTEM))
    shared.record_commit(Lsn(lsn))
    return shared


def test_a_request_that_committed_sets_the_cookie_with_its_attributes() -> None:
    header, value = carrier().response_headers(
        carrier().read(None, None, NOW), committed(None, 4242), https=False, now=NOW
    )[0]
    assert header == "Set-Cookie"
    name_value, *attributes = value.split("; ")
    name, _, token = name_value.partition("=")
    assert name == "router_position"
    assert attributes == ["Max-Age=60", "Path=/", "HttpOnly", "SameSite=Lax"]
    found = Signer(SECRET).verify(token)
    assert found is not None
    assert found.issued_at == int(NOW)
    assert carrier().read(value.split(";")[0], None, NOW).position == Position(SYSTEM, Lsn(4242))


def test_over_https_the_cookie_is_secure() -> None:
    _, value = carrier().response_headers(
        carrier().read(None, None, NOW), committed(None, 1), https=True, now=NOW
    )[0]
    assert "; Secure; HttpOnly; SameSite=Lax" in value
    _, forced = carrier(secure=True, max_age=10).response_headers(
        carrier().read(None, None, NOW), committed(None, 1), https=False, now=NOW
    )[0]
    assert "Secure" in forced
    assert "Max-Age=10" in forced


def test_an_api_client_gets_the_header_back() -> None:
    incoming = carrier().read(None, signed(10), NOW)
    headers = carrier().response_headers(incoming, committed(incoming.position, 4242), False, NOW)
    assert [h for h, _ in headers] == ["Router-Position"]
    found = Signer(SECRET).verify(headers[0][1])
    assert found is not None
    assert found.token == encode(Position(SYSTEM, Lsn(4242)))


def test_the_new_position_is_never_below_the_one_the_request_started_from() -> None:
    incoming = carrier().read(f"router_position={signed(9000)}", None, NOW)
    shared = committed(incoming.position, 100)
    shared.verdict = Start.APPLIED
    assert shared.position() == Position(SYSTEM, Lsn(9000))


def test_a_request_that_did_not_write_sends_nothing_or_drops_a_useless_carrier() -> None:
    c = carrier()
    assert c.response_headers(c.read(None, None, NOW), SharedFloor(), False, NOW) == []
    incoming = c.read(f"router_position={signed(10)}", None, NOW)
    applied = incoming.shared_floor(5.0)
    applied.verdict = Start.APPLIED
    assert c.response_headers(incoming, applied, False, NOW) == []
    for verdict in (Start.SETTLED, Start.FOREIGN, Start.IMPOSSIBLE):
        applied.verdict = verdict
        [(header, value)] = c.response_headers(incoming, applied, False, NOW)
        assert header == "Set-Cookie"
        assert value.startswith("router_position=; Max-Age=0;")
    forged = c.read("router_position=forged", None, NOW)
    [(_, value)] = c.response_headers(forged, forged.shared_floor(5.0), False, NOW)
    assert "Max-Age=0" in value


def test_bad_carrier_options_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="cookie"):
        carrier(cookie=None, header=None)
    with pytest.raises(ConfigurationError, match="cookie"):
        carrier(cookie="a b")
    with pytest.raises(ConfigurationError, match="max_age"):
        carrier(max_age=0)
    with pytest.raises(ConfigurationError, match="samesite"):
        carrier(samesite="none", secure=False)


# -- the shared floor's verdicts -----------------------------------------------------------


def test_a_position_behind_some_replica_is_applied() -> None:
    shared = SharedFloor(Position(SYSTEM, Lsn(1000)), issued_at=NOW)
    assert shared.floor_for(SYSTEM, topology(2000, 2000, 900), NOW) == 1000
    assert shared.verdict is Start.APPLIED


def test_a_position_every_replica_replayed_is_settled() -> None:
    shared = SharedFloor(Position(SYSTEM, Lsn(1000)), issued_at=NOW)
    assert shared.floor_for(SYSTEM, topology(2000, 2000, 1000), NOW) == 1000
    assert shared.verdict is Start.SETTLED


def test_a_down_replica_that_was_behind_keeps_the_position_needed() -> None:
    down = NodeHealth(name="replica9", role=Role.REPLICA, health=Health.DOWN, replay_lsn=Lsn(500))
    nodes = (*topology(2000, 2000).nodes, down)
    shared = SharedFloor(Position(SYSTEM, Lsn(1000)), issued_at=NOW)
    shared.floor_for(SYSTEM, Topology(nodes, wal=topology(2000).wal), NOW)
    assert shared.verdict is Start.APPLIED


def test_a_position_of_another_cluster_is_ignored() -> None:
    shared = SharedFloor(Position(SYSTEM + 1, Lsn(1000)), issued_at=NOW)
    assert shared.floor_for(SYSTEM, topology(2000, 0), NOW) is None
    assert shared.verdict is Start.FOREIGN


def test_a_position_ahead_of_the_primary_counts_until_the_horizon() -> None:
    shared = SharedFloor(Position(SYSTEM, Lsn(9000)), issued_at=NOW, horizon=5.0)
    # Another process committed it a moment ago: the monitor has not sampled it yet.
    assert shared.floor_for(SYSTEM, topology(2000, 2000), NOW + 1) == 9000
    assert shared.verdict is Start.APPLIED
    # Still ahead long after: no primary of this cluster wrote it.
    assert shared.floor_for(SYSTEM, topology(2000, 2000), NOW + 6) is None
    # mypy keeps the narrowing of the first verdict across floor_for(), which sets it again.
    assert shared.verdict is Start.IMPOSSIBLE  # type: ignore[comparison-overlap]


def test_an_unknown_cluster_applies_the_signed_position() -> None:
    shared = SharedFloor(Position(SYSTEM, Lsn(9000)), issued_at=NOW)
    assert shared.floor_for(None, topology(None), NOW + 100) == 9000
    assert shared.verdict is Start.UNCHECKED


def test_no_position_no_floor() -> None:
    shared = SharedFloor()
    assert shared.floor_for(SYSTEM, topology(1), NOW) is None
    assert shared.verdict is Start.NONE
    assert shared.position() is None


# -- jobs ----------------------------------------------------------------------------------


def test_a_job_token_carries_the_commit_and_resume_makes_it_the_floor() -> None:
    assert job_token() is None
    shared = committed(None, 4242)
    reset = SHARED_FLOOR.set(shared)
    try:
        value = job_token()
    finally:
        SHARED_FLOOR.reset(reset)
    assert value is not None
    with resume(value) as resumed:
        assert SHARED_FLOOR.get() is resumed
        assert resumed.start == Position(SYSTEM, Lsn(4242))
        assert resumed.issued_at is not None
    assert SHARED_FLOOR.get() is None


@pytest.mark.parametrize("value", ["", "junk", "r1.x.123", f"{encode(Position(1, Lsn(1)))}.x"])
def test_a_bad_job_token_is_ignored(value: str) -> None:
    with resume(value) as resumed:
        assert resumed.start is None
    with resume(None) as resumed:
        assert resumed.start is None


def test_import_router_does_not_import_the_web_package() -> None:
    code = "import sys, router, router.sqlalchemy; print('router.web' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_commit_after_the_response_started_is_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from router.web._carrier import warn_if_late

    shared = committed(None, 10)
    carrier().response_headers(carrier().read(None, None, NOW), shared, False, NOW)
    warn_if_late(shared, "/ok")
    assert not caplog.records
    shared.record_commit(Lsn(20))  # a dependency's teardown committed after the headers
    warn_if_late(shared, "/late")
    [record] = caplog.records
    assert record.levelname == "WARNING"
    assert "/late" in record.getMessage()


class _Core:
    """What router._context.attach reads of a routing engine."""

    def __init__(self) -> None:
        self.system_id = SYSTEM
        self.topology = topology(2000, 2000)


def test_a_commit_of_the_unit_whose_position_was_lost_holds_its_next_sessions() -> None:
    root = Scope.for_router(Consistency.READ_YOUR_WRITES)
    core = _Core()
    shared = SharedFloor()
    context = SHARED_FLOOR.set(shared)
    try:
        first = root.session(None, None)
        attach(first, core)
        first.advance(Lsn(1000))
        first.lose_position()  # the next commit stands, its position unknown
        second = root.session(None, None)
        attach(second, core)
        # The unit's next session reads where that commit surely is until it is covered.
        assert second.lost
        second.regain_position(Lsn(1500), second.losses())
        assert not shared.lost
        assert shared.position() == Position(SYSTEM, Lsn(1500))  # covers the lost commit
        third = root.session(None, None)
        attach(third, core)
        assert not third.lost
    finally:
        SHARED_FLOOR.reset(context)
