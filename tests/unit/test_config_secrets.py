"""Passwords never leak from configuration: reprs, errors, redact(); fuzzing of the parsers.

Every case uses a unique marker as the password and asserts it appears nowhere the user or a
log could see it — only in ``NodeConfig.connect_dsn``, which is what drivers connect with.
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from router.config import NodeConfig, RouterConfig, redact
from router.errors import ConfigurationError

MARKER = "Zq7xMARKERk2W"

FUZZ = settings(
    max_examples=300,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def _visible(error: BaseException) -> str:
    """Everything an exception shows: message, repr, traceback and its chained exceptions."""
    return "".join(traceback.format_exception(error)) + repr(error) + str(error)


def _assert_hidden(error: ConfigurationError) -> None:
    assert MARKER not in _visible(error)
    assert MARKER not in error.field
    assert MARKER not in error.problem
    assert error.__context__ is None or MARKER not in _visible(error.__context__)


# --- redact --------------------------------------------------------------------------------------

M = MARKER

REDACT_CASES: list[tuple[str, list[str]]] = [
    (f"postgresql://app:{M}@db:5432/shop", ["postgresql://app:***@db:5432/shop"]),
    (f"postgres://app:{M}@h1,h2:5433/shop?sslmode=require", ["@h1,h2:5433/shop?sslmode=require"]),
    (f"postgresql://app:{M}@[::1]:5432/shop", ["@[::1]:5432/shop"]),
    (f"postgresql://app:{M}%40x%2Fy@db/shop", ["app:***@db/shop"]),
    (f"postgresql://app:{M}@@db/shop", ["@db/shop"]),  # a raw '@' in the password
    (f"postgresql://app:a/{M}@db/shop", ["@db/shop"]),  # a raw '/' in the password
    (f"postgresql://app:{M} x@db/shop", ["@db/shop"]),  # a space in the password
    (f"postgresql://db/shop?password={M}&sslmode=require", ["?password=***&sslmode=require"]),
    (f"postgresql://db/shop?sslpassword={M}", ["sslpassword=***"]),
    (f"postgresql://db/shop?pass%77ord={M}&x=1", ["&x=1"]),
    (f"postgresql://app:{M}@db/shop?password={M}", ["app:***@db/shop?password=***"]),
    (f"postgresql://u:{M}@h:5432/db?application_name=a@b", ["postgresql://u:"]),
    (f"postgresql+asyncpg://app:{M}@db/shop", ["postgresql+asyncpg://app:***@db/shop"]),
    (f"host=db password={M} dbname=shop", ["host=db password=*** dbname=shop"]),
    (f"host=db password = {M} dbname=shop", ["host=db password = *** dbname=shop"]),
    (f"host=db password='{M} with \\' quote' dbname=shop", ["host=db password=*** dbname=shop"]),
    (f"host=db password={M}\\ escaped dbname=shop", ["dbname=shop"]),
    (f"host=db password='{M} unterminated", ["host=db password=***"]),
    (f"host=db password='{M}://x' dbname=shop", ["host=db password=*** dbname=shop"]),
    (f"user=PASSWORD= password='\r{M}' dbname=shop", ["dbname=shop"]),
    (f"host=db password=a://{M}@x dbname=shop", ["host=db password=*** dbname=shop"]),
    (f"host=db sslpassword={M} dbname=shop", ["sslpassword=***"]),
    (f"PGPASSWORD={M}", ["PGPASSWORD=***"]),
    (f"connecting to postgresql://app:{M}@db/shop failed", ["failed", "app:***@db/shop"]),
    (f"a postgresql://u:{M}@h/db and host=h password={M}", ["and host=h password=***"]),
]


@pytest.mark.parametrize(("dsn", "kept"), REDACT_CASES)
def test_redact_masks_the_password(dsn: str, kept: list[str]) -> None:
    redacted = redact(dsn)
    assert MARKER not in redacted
    assert "***" in redacted
    for text in kept:
        assert text in redacted


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://app@db:5432/shop?sslmode=require",
        "postgresql://db/shop",
        "host=db port=5432 dbname=shop user=app",
        "",
        "no secrets here",
        "postgresql://app:@db/shop",  # an empty password
    ],
)
def test_redact_leaves_text_without_a_password_alone(dsn: str) -> None:
    assert redact(dsn) == dsn


def test_node_redacted_dsn() -> None:
    node = NodeConfig(dsn=f"postgresql://app:{M}@db/shop")
    assert node.redacted_dsn == "postgresql://app:***@db/shop"


# --- reprs ---------------------------------------------------------------------------------------


def _configs() -> list[object]:
    url = f"postgresql://app:{M}@db-1,db-2/shop"
    return [
        NodeConfig(dsn=f"postgresql://app:{M}@db/shop"),
        NodeConfig(dsn=f"host=db password='{M}' dbname=shop"),
        NodeConfig(dsn="postgresql://app@db/shop", password=M),
        RouterConfig(
            primary=f"postgresql://app:{M}@p/shop", replicas=[f"host=r password={M} dbname=shop"]
        ),
        RouterConfig(primary=NodeConfig(dsn="postgresql://p/shop", password=M)),
        RouterConfig.from_url(url),
        RouterConfig.from_url(f"{url}?router_policy=random").replace(policy="latency"),
        RouterConfig.from_env({"ROUTER_URL": url}),
        RouterConfig.from_env({"ROUTER_URL": "postgresql://app@db/shop", "ROUTER_PASSWORD": M}),
        RouterConfig.from_env(
            {
                "ROUTER_PRIMARY_URL": f"postgresql://app:{M}@p/shop",
                "ROUTER_REPLICA_URLS": (
                    f"postgresql://app:{M}@r1/shop, host=r2 password={M} dbname=shop"
                ),
            }
        ),
    ]


@pytest.mark.parametrize("config", _configs(), ids=repr)
def test_reprs_mask_passwords(config: object) -> None:
    assert MARKER not in repr(config)
    assert MARKER not in str(config)
    assert MARKER not in f"{config}"
    assert "***" in repr(config)
    nodes = config.all_nodes if isinstance(config, RouterConfig) else (config,)
    for node in nodes:
        assert isinstance(node, NodeConfig)
        assert MARKER not in node.redacted_dsn
        # The password still reaches the driver.
        assert MARKER in node.connect_dsn


# --- errors --------------------------------------------------------------------------------------

BAD_URLS = [
    "postgresql://app:{pw}@db/",
    "postgresql://app:{pw}@db",
    "postgresql://app:{pw}@db:http/shop",
    "postgresql://app:{pw}@db:99999/shop",
    "postgresql://app:{pw}@db1,db2/shop?port=1,2,3",
    "postgresql://app:{pw}@/shop",
    "postgresql://app:{pw}@db1,,db3/shop",
    "postgresql://app:{pw}@db1,DB1/shop",
    "postgresql://app:{pw}@db/shop?frobnicate=1",
    "postgresql://app:{pw}@db/shop?sslmode",
    "postgresql://app:{pw}@[::1/shop",
    "postgresql://app:{pw}@db/sh\0op",
    "postgresql://app:{pw}@db/shop%00",
    "postgresql://app:{pw}%ZZ@db/shop",  # libpq quotes the bad token: the password
    "postgresql://app:{pw} x@db/shop",  # libpq quotes the spaced token: the password
    "postgresql://app:{pw}%00@db/shop",
    "postgresql://app:{pw}\ud800@db/shop",
    "postgresql://app:{pw}@db:5432/shop?application_name=a@b",
    "postgresql://app:x/{pw}@db/shop",
    "postgresql://app:{pw}@db/shop?router_polcy=random",
    "postgresql://app:{pw}@db/shop?router_policy=fastest",
    "postgresql://app:{pw}@db/shop?router_pool_min_size=99",
    "postgresql://app:{pw}@db/shop?password={pw}&sslmode",
    "postgresql://app:{pw}@db/shop?pass%77ord={pw}&sslmode",
    "postgresql://app:{pw}@h1:5432,h2:x/shop",
    "postgresql://password=x:{pw}@db/shop",
    "postgres ql://app:{pw}@db/shop",
    # Found by fuzzing.
    "postgresql://:%{pw}\x1e@",
    "postgresql://PASSWORD=:\r{pw}@0",
    "{pw}",
]

BAD_DSNS = [
    "host=db password={pw}",  # no database
    "host=db password={pw} dbname=shop port=0",
    "host=db password='{pw}' dbname=shop frobnicate=1",
    "host=db password={pw} dbname",
    "host=db password={pw} trailing garbage",
    "host=db password={pw} x y dbname=shop",
    "host=db password='{pw} dbname=shop",
    "host=db password={pw}\\",
    "host=db dbname='x password={pw}'",
    "host='db password={pw}' dbname=shop",
    "host=h1,h2 password={pw} dbname=shop",
    *BAD_URLS,
]


@pytest.mark.parametrize("template", BAD_URLS)
def test_from_url_errors_hide_the_password(template: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        RouterConfig.from_url(template.format(pw=MARKER))
    _assert_hidden(info.value)


@pytest.mark.parametrize("template", BAD_DSNS)
@pytest.mark.parametrize(
    "make",
    [
        lambda dsn: NodeConfig(dsn=dsn),
        lambda dsn: RouterConfig(primary=dsn),
        lambda dsn: RouterConfig(
            primary="postgresql://p/shop", replicas=["postgresql://r/shop", dsn]
        ),
        lambda dsn: RouterConfig(nodes=[dsn]),
        lambda dsn: RouterConfig.from_env({"ROUTER_PRIMARY_URL": dsn}),
        lambda dsn: RouterConfig.from_env(
            {"ROUTER_PRIMARY_URL": "postgresql://p/shop", "ROUTER_REPLICA_URLS": dsn}
        ),
        lambda dsn: RouterConfig.from_env({"ROUTER_URL": dsn}),
    ],
)
def test_dsn_errors_hide_the_password(template: str, make: Callable[[str], Any]) -> None:
    with pytest.raises(ConfigurationError) as info:
        make(template.format(pw=MARKER))
    _assert_hidden(info.value)


# Typed Any: these are wrong on purpose.
BYTES_URL: Any = f"postgresql://app:{M}@db/shop".encode()
BYTES_MARKER: Any = M.encode()
STR_URL: Any = f"postgresql://app:{M}@db/shop"


@pytest.mark.parametrize(
    "make",
    [
        # Wrong types: the value is not shown at all.
        lambda: NodeConfig(dsn=BYTES_URL),
        lambda: NodeConfig(dsn="postgresql://db/shop", password=BYTES_MARKER),
        lambda: NodeConfig(dsn=f"postgresql://app:{M}@db/shop", password=M),
        lambda: RouterConfig(primary=BYTES_URL),
        lambda: RouterConfig(
            primary=f"postgresql://app:{M}@db/shop", replicas=f"postgresql://app:{M}@r/shop"
        ),
        lambda: RouterConfig.from_url(BYTES_URL),
        lambda: RouterConfig.from_env({"ROUTER_URL": f"host=db password={M} dbname=shop"}),
        lambda: RouterConfig.from_env(
            {"ROUTER_PRIMARY_URL": f"postgresql://u:{M}@p/db", "ROUTER_PASSWORD": M}
        ),
        lambda: RouterConfig.from_env(
            {"ROUTER_URL": "postgresql://db/shop", "ROUTER_PASSWORD": M, "ROUTER_X": M}
        ),
        # Valid DSNs, other errors.
        lambda: RouterConfig(
            primary=f"postgresql://app:{M}@db/shop", replicas=[f"postgresql://app:{M}@db/shop"]
        ),
        lambda: RouterConfig(
            primary=f"postgresql://app:{M}@db/shop", replicas=[f"postgresql://app:{M}@r/other"]
        ),
        lambda: RouterConfig(
            primary=f"postgresql://app:{M}@db/shop", nodes=[f"postgresql://app:{M}@r/shop"]
        ),
        lambda: RouterConfig(replicas=[f"postgresql://app:{M}@r/shop"]),
        lambda: RouterConfig(primary=f"postgresql://app:{M}@db/shop", pool=STR_URL),
    ],
)
def test_other_errors_hide_the_password(make: Callable[[], Any]) -> None:
    with pytest.raises(ConfigurationError) as info:
        make()
    _assert_hidden(info.value)


# --- fuzzing -------------------------------------------------------------------------------------

_TRICKY = [":", "/", "://", "@", "'", "\\", " ", "=", "?", "&", "%", "%4", "%ZZ", "\n", "\x1e"]
_TRICKY += ["password", "password=", "***", "a", "[", "]", ",", '"', "postgresql://", "\0"]
# Arbitrary text, and text built from the pieces parsers and redaction care about.
ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=120) | st.lists(
    st.sampled_from(_TRICKY), max_size=10
).map("".join)
NO_AT = ANY_TEXT.map(lambda text: text.replace("@", ""))
USER = ANY_TEXT.map(lambda text: text.replace("@", "").replace(":", "").replace("/", ""))

_KEYS = [
    "sslmode",
    "port",
    "host",
    "hostaddr",
    "dbname",
    "user",
    "password",
    "application_name",
    "target_session_attrs",
    "connect_timeout",
    "options",
    "router_policy",
    "router_consistency",
    "router_max_lag_bytes",
    "router_max_lag_seconds",
    "router_pool_max_size",
    "router_pool_min_size",
    "router_shadow",
    "router_read_functions",
    "router_write_functions",
    "router_nope",
]
_PIECE = st.text(st.sampled_from("ab1:/?&=@[],.%20 -_xFf\\'\"\0"), max_size=12)


@st.composite
def libpq_urls(draw: st.DrawFn) -> str:
    """URLs shaped like libpq's, with pieces that are valid and pieces that are not."""
    scheme = draw(st.sampled_from(["postgresql://", "postgres://"]))
    userinfo = draw(st.sampled_from(["", "u@", "u:pw@", "u:@"]) | _PIECE.map(lambda s: s + "@"))
    host = st.sampled_from(["h1", "h2", "[::1]", "db.example", "", "10.0.0.1"]) | _PIECE
    port = st.sampled_from(["", ":5432", ":1", ":0", ":99999", ":x"]) | _PIECE
    hosts = ",".join(a + b for a, b in draw(st.lists(st.tuples(host, port), max_size=4)))
    path = draw(st.sampled_from(["", "/", "/db", "/d%20b"]) | _PIECE)
    value = st.sampled_from(["1", "none", "random", "bounded", "a,b", "", "-1", "x"]) | _PIECE
    items = draw(st.lists(st.tuples(st.sampled_from(_KEYS) | _PIECE, value), max_size=4))
    query = "&".join(f"{k}={v}" for k, v in items)
    return f"{scheme}{userinfo}{hosts}{path}{'?' + query if items else ''}"


def _only_configuration_errors(call: Callable[[], object]) -> ConfigurationError | None:
    try:
        call()
    except ConfigurationError as error:
        return error
    return None


@pytest.mark.timeout(120)
@FUZZ
@given(ANY_TEXT)
def test_fuzz_redact_never_raises(text: str) -> None:
    assert isinstance(redact(text), str)


@pytest.mark.timeout(120)
@FUZZ
@given(ANY_TEXT | libpq_urls() | ANY_TEXT.map(lambda s: "postgresql://" + s))
def test_fuzz_from_url_raises_only_configuration_errors(url: str) -> None:
    _only_configuration_errors(lambda: RouterConfig.from_url(url))
    _only_configuration_errors(lambda: NodeConfig(dsn=url))


@pytest.mark.timeout(120)
@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(
            ["ROUTER_URL", "ROUTER_PRIMARY_URL", "ROUTER_REPLICA_URLS", "ROUTER_PASSWORD"]
            + [f"ROUTER_{key[7:].upper()}" for key in _KEYS if key.startswith("router_")]
        ),
        st.sampled_from(["postgresql://h/db", "postgresql://h1,h2/db", "1", "none", "on"])
        | ANY_TEXT
        | libpq_urls(),
        max_size=5,
    )
)
def test_fuzz_from_env_raises_only_configuration_errors(env: dict[str, str]) -> None:
    _only_configuration_errors(lambda: RouterConfig.from_env(env))


@pytest.mark.timeout(120)
@FUZZ
@given(
    scheme=st.sampled_from(["postgresql://", "postgres://"]),
    user=USER,
    before=NO_AT,
    after=NO_AT,
    rest=ANY_TEXT | libpq_urls().map(lambda url: url.split("://", 1)[1]),
)
def test_fuzz_url_password_never_shown(
    scheme: str, user: str, before: str, after: str, rest: str
) -> None:
    url = f"{scheme}{user}:{before}{MARKER}{after}@{rest}"
    assert MARKER not in redact(url)
    error = _only_configuration_errors(lambda: RouterConfig.from_url(url))
    if error is not None:
        _assert_hidden(error)
    else:
        config = RouterConfig.from_url(url)
        assert MARKER not in repr(config)


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@pytest.mark.timeout(120)
@FUZZ
@given(
    before=ANY_TEXT.map(lambda text: text.replace("'", "").replace("\\", "")),
    secret_before=ANY_TEXT,
    secret_after=ANY_TEXT,
    after=ANY_TEXT,
)
def test_fuzz_conninfo_password_never_shown(
    before: str, secret_before: str, secret_after: str, after: str
) -> None:
    # A string starting with a scheme is a URL, not key=value pairs (the URL test covers it).
    assume("password" not in before.lower() and not re.match(r"\s*[A-Za-z][\w+.-]*://", before))
    dsn = f"{before} password={_quote(secret_before + MARKER + secret_after)} {after}"
    assert MARKER not in redact(dsn)
    for make in (lambda: NodeConfig(dsn=dsn), lambda: RouterConfig(primary=dsn)):
        error = _only_configuration_errors(make)
        if error is not None:
            _assert_hidden(error)
        else:
            assert MARKER not in repr(make())


# --- size --------------------------------------------------------------------------------------


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    "text",
    [
        "a" * 1_000_000,
        "password=" + "a" * 1_000_000,
        "a://" * 250_000,
        "x " + "+" * 1_000_000 + "://u:pw@h",
        "postgresql://h/db?" + "a&" * 500_000,
        "postgresql://" + ":" * 1_000_000 + "@",
        "password='" + "\\a" * 500_000,
    ],
    ids=lambda text: repr(text[:12]),
)
def test_redact_is_linear_on_pathological_input(text: str) -> None:
    # Quadratic scanning would take minutes on these; the timeout catches it.
    assert isinstance(redact(text), str)


@pytest.mark.timeout(20)
def test_a_ten_megabyte_url_is_refused_quickly() -> None:
    url = f"postgresql://app:{MARKER}@db/" + "x" * 10_000_000
    for make in (
        lambda: RouterConfig.from_url(url),
        lambda: NodeConfig(dsn=url),
        lambda: RouterConfig.from_env({"ROUTER_PRIMARY_URL": url}),
    ):
        with pytest.raises(ConfigurationError) as info:
            make()
        assert "characters long" in info.value.problem
        _assert_hidden(info.value)


def test_a_url_without_a_scheme_in_text_is_still_masked() -> None:
    assert MARKER not in redact(f"dial ://app:{MARKER}@db/shop now")
