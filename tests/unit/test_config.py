"""DydxConfig: presets, builders, environment, validation messages, and secrets that never leak."""

from __future__ import annotations

import copy
import dataclasses
import logging
import pickle
import ssl
import traceback

import pytest

from nautilus_dydx.core.config import (
    LOCAL_CHAIN_ID,
    MAINNET_CHAIN_ID,
    TESTNET_CHAIN_ID,
    USDC_DENOM,
    DydxConfig,
    Secret,
)
from nautilus_dydx.core.errors import ConfigError
from nautilus_dydx.core.retry import ExponentialBackoff

# Public test phrase from the official clients (protocol reference §6.1); never funded on mainnet.
MNEMONIC = (
    "mandate glove carry despair area gloom sting round toddler deal face vague receive shallow "
    "confirm south green cup rain drill monkey method tongue fence"
)
SECRET_WORDS = ("mandate", "despair", "toddler", "fence")
PRIVATE_KEY = "0a7ff605269ed00853a425beda719da038a11792f6dddf31c087b2988b4dc8fe"


def _assert_no_secret(text: str) -> None:
    for word in (*SECRET_WORDS, PRIVATE_KEY, PRIVATE_KEY[:16]):
        assert word not in text, f"secret material {word!r} leaked into {text!r}"


# --------------------------------------------------------------------------------------------------
# Presets


def test_mainnet_preset() -> None:
    c = DydxConfig.mainnet()
    assert c.network == "mainnet"
    assert c.indexer_http_url == "https://indexer.dydx.trade"
    assert c.indexer_ws_url == "wss://indexer.dydx.trade/v4/ws"
    assert (c.grpc_target, c.grpc_tls) == ("oegs.dydx.trade:443", True)
    assert c.chain_id == MAINNET_CHAIN_ID == "dydx-mainnet-1"
    assert c.native_denom == "adydx"
    assert c.usdc_denom == USDC_DENOM
    assert c.faucet_url is None
    assert c.verify_tls is True
    assert c.ssl_context is None
    assert c.mnemonic is None
    assert not c.has_credentials
    assert c.subaccount_number == 0
    assert c.rest_rate_limit == (100, 10.0)
    assert c.short_block_window == 40
    assert isinstance(c.retry, ExponentialBackoff)
    assert c.is_mainnet


def test_testnet_preset() -> None:
    c = DydxConfig.testnet()
    assert c.indexer_http_url == "https://indexer.v4testnet.dydx.exchange"
    assert c.indexer_ws_url == "wss://indexer.v4testnet.dydx.exchange/v4/ws"
    assert (c.grpc_target, c.grpc_tls) == ("oegs-testnet.dydx.exchange:443", True)
    assert c.chain_id == TESTNET_CHAIN_ID == "dydx-testnet-4"
    assert c.native_denom == "adv4tnt"
    assert c.faucet_url == "https://faucet.v4testnet.dydx.exchange"
    assert not c.is_mainnet


def test_local_preset_serves_rest_ws_and_faucet_on_one_port() -> None:
    c = DydxConfig.local()
    assert c.indexer_http_url == "http://127.0.0.1:3002"
    assert c.indexer_ws_url == "ws://127.0.0.1:3002/v4/ws"
    assert (c.grpc_target, c.grpc_tls) == ("127.0.0.1:9090", False)
    assert c.chain_id == LOCAL_CHAIN_ID == "localdydxprotocol"
    assert c.native_denom == "adv4tnt"
    assert c.faucet_url == "http://127.0.0.1:3002"

    c = DydxConfig.local(host="localhost", port=41234, grpc_port=41235)
    assert c.rest_url("time") == "http://localhost:41234/v4/time"
    assert c.indexer_ws_url == "ws://localhost:41234/v4/ws"
    assert c.grpc_target == "localhost:41235"


def test_local_preset_brackets_ipv6_hosts() -> None:
    c = DydxConfig.local(host="::1", port=5000, grpc_port=5001)
    assert c.indexer_http_url == "http://[::1]:5000"
    assert c.grpc_target == "[::1]:5001"


@pytest.mark.parametrize("port", [0, 65536, True, "3002"])
def test_local_preset_rejects_bad_ports(port: object) -> None:
    with pytest.raises(ConfigError, match="port must be an int"):
        DydxConfig.local(port=port)  # type: ignore[arg-type]


def test_preset_by_name() -> None:
    assert DydxConfig.preset(" Testnet ") == DydxConfig.testnet()
    with pytest.raises(ConfigError, match="unknown network 'moon'"):
        DydxConfig.preset("moon")


def test_rest_url() -> None:
    c = DydxConfig.mainnet()
    assert c.rest_url("perpetualMarkets") == "https://indexer.dydx.trade/v4/perpetualMarkets"
    assert c.rest_url("/addresses/dydx1x/subaccountNumber/0") == (
        "https://indexer.dydx.trade/v4/addresses/dydx1x/subaccountNumber/0"
    )


# --------------------------------------------------------------------------------------------------
# Builders


def test_builders_return_new_configs_and_leave_the_original_alone() -> None:
    base = DydxConfig.testnet()
    changed = base.with_subaccount(3).with_timeouts(request=2.5, ws_heartbeat=60).with_rate_limit(50, 5)
    assert (changed.subaccount_number, changed.request_timeout, changed.ws_heartbeat_timeout) == (
        3,
        2.5,
        60.0,
    )
    assert changed.connect_timeout == base.connect_timeout
    assert changed.rest_rate_limit == (50, 5.0)
    assert base.subaccount_number == 0
    assert base.rest_rate_limit == (100, 10.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        base.subaccount_number = 1  # type: ignore[misc]


def test_with_indexer_derives_the_websocket_url() -> None:
    c = DydxConfig.testnet().with_indexer("https://Indexer.Example.com:8443/v4/")
    assert c.indexer_http_url == "https://indexer.example.com:8443"
    assert c.indexer_ws_url == "wss://indexer.example.com:8443/v4/ws"
    c = DydxConfig.local().with_indexer("http://10.0.0.5:3002", "ws://10.0.0.5:3003")
    assert c.indexer_ws_url == "ws://10.0.0.5:3003"


def test_with_grpc_chain_faucet_retry_window() -> None:
    policy = ExponentialBackoff(initial=0.5, max_attempts=3)
    c = (
        DydxConfig.local()
        .with_grpc("node.example:9091", tls=True)
        .with_chain("my-chain-1", native_denom="ufoo")
        .with_faucet(None)
        .with_retry(policy)
        .with_short_block_window(20)
    )
    assert (c.grpc_target, c.grpc_tls, c.chain_id, c.native_denom) == (
        "node.example:9091",
        True,
        "my-chain-1",
        "ufoo",
    )
    assert c.faucet_url is None
    assert c.retry is policy
    assert c.short_block_window == 20


def test_credentials_builders() -> None:
    c = DydxConfig.testnet().with_mnemonic("  " + MNEMONIC.replace(" ", "   ") + "\n")
    assert c.mnemonic is not None
    assert c.mnemonic.reveal() == MNEMONIC
    assert c.has_credentials
    k = c.with_private_key("0x" + PRIVATE_KEY.upper())
    assert k.mnemonic is None
    assert k.private_key is not None
    assert k.private_key.reveal() == PRIVATE_KEY
    assert not k.without_credentials().has_credentials
    assert c.with_mnemonic(Secret(MNEMONIC)) == c


def test_tls_builder() -> None:
    ctx = ssl.create_default_context()
    c = DydxConfig.testnet().with_tls(ssl_context=ctx)
    assert c.http_ssl is ctx
    assert c == DydxConfig.testnet()  # the context is not part of equality
    insecure = DydxConfig.testnet().with_tls(verify=False)
    assert insecure.http_ssl is False
    assert DydxConfig.testnet().http_ssl is True
    with pytest.raises(ConfigError, match="either ssl_context or verify_tls=False"):
        DydxConfig.testnet().with_tls(verify=False, ssl_context=ctx)


def test_mainnet_refuses_insecure_transport_without_the_explicit_flag() -> None:
    with pytest.raises(
        ConfigError, match=r"insecure transport on mainnet \(verify_tls=False\).*allow_insecure_mainnet"
    ):
        DydxConfig.mainnet().with_tls(verify=False)
    with pytest.raises(ConfigError, match="grpc_tls=False"):
        DydxConfig.mainnet().with_grpc("oegs.dydx.trade:443", tls=False)
    with pytest.raises(ConfigError, match="plain http indexer URL"):
        DydxConfig.mainnet().with_indexer("http://indexer.dydx.trade")
    # A custom network label does not dodge the check: the chain id decides.
    with pytest.raises(ConfigError, match="insecure transport on mainnet"):
        DydxConfig.local().with_chain(MAINNET_CHAIN_ID)
    ok = DydxConfig.mainnet().with_tls(verify=False, allow_insecure_mainnet=True)
    assert ok.verify_tls is False
    assert ok.allow_insecure_mainnet


def _context(
    *, verify_mode: ssl.VerifyMode = ssl.CERT_REQUIRED, check_hostname: bool = True
) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = check_hostname  # before verify_mode: CERT_NONE needs it off
    ctx.verify_mode = verify_mode
    return ctx


UNVERIFIED_CONTEXTS = [
    pytest.param(
        {"verify_mode": ssl.CERT_NONE, "check_hostname": False}, "verify_mode=CERT_NONE", id="cert-none"
    ),
    pytest.param({"check_hostname": False}, "check_hostname=False", id="no-hostname-check"),
]


@pytest.mark.parametrize(("kwargs", "what"), UNVERIFIED_CONTEXTS)
def test_mainnet_refuses_an_unverifying_context_without_the_explicit_flag(
    kwargs: dict[str, object], what: str, caplog: pytest.LogCaptureFixture
) -> None:
    ctx = _context(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(
        ConfigError, match=rf"insecure transport on mainnet \(verify_tls=False: ssl_context has {what}\)"
    ):
        DydxConfig.mainnet().with_tls(ssl_context=ctx)
    with pytest.raises(ConfigError, match="insecure transport on mainnet"):
        dataclasses.replace(DydxConfig.mainnet(), ssl_context=ctx)
    with caplog.at_level(logging.WARNING):
        ok = DydxConfig.mainnet().with_tls(ssl_context=ctx, allow_insecure_mainnet=True)
    assert "verification disabled" in caplog.text
    assert ok.verify_tls is False
    assert "verify_tls=False" in repr(ok)
    assert ok.http_ssl is ctx
    # an explicit verify_tls=False agrees with such a context, and copies keep both
    assert DydxConfig.mainnet().with_tls(verify=False, ssl_context=ctx, allow_insecure_mainnet=True) == ok
    again = ok.with_rate_limit(50, 10.0)
    assert (again.verify_tls, again.ssl_context) == (False, ctx)


@pytest.mark.parametrize(("kwargs", "what"), UNVERIFIED_CONTEXTS)
def test_an_unverifying_context_reports_verify_tls_false_off_mainnet(
    kwargs: dict[str, object], what: str
) -> None:
    ctx = _context(**kwargs)  # type: ignore[arg-type]
    c = DydxConfig.testnet().with_tls(ssl_context=ctx)
    assert c.verify_tls is False
    assert "verify_tls=False" in repr(c)
    assert c.http_ssl is ctx
    assert c.with_timeouts(request=3.0).verify_tls is False


def test_a_verifying_context_keeps_verify_tls_true() -> None:
    for ctx in (_context(), _context(verify_mode=ssl.CERT_OPTIONAL)):  # a client treats OPTIONAL as REQUIRED
        c = DydxConfig.mainnet().with_tls(ssl_context=ctx)
        assert c.verify_tls is True
        assert "verify_tls=True" in repr(c)
        assert c.http_ssl is ctx
        with pytest.raises(ConfigError, match="either ssl_context or verify_tls=False"):
            DydxConfig.testnet().with_tls(verify=False, ssl_context=ctx)


def test_a_context_weakened_after_the_config_is_checked_again_by_each_copy() -> None:
    ctx = _context()
    c = DydxConfig.mainnet().with_tls(ssl_context=ctx)
    ctx.check_hostname = False
    with pytest.raises(ConfigError, match="check_hostname=False"):
        c.with_rate_limit(50, 10.0)


def test_configs_are_hashable_and_comparable() -> None:
    a = DydxConfig.testnet().with_mnemonic(MNEMONIC)
    b = DydxConfig.testnet().with_mnemonic(MNEMONIC)
    assert a == b
    assert hash(a) == hash(b)
    assert a != DydxConfig.testnet()
    assert copy.deepcopy(a) == a


# --------------------------------------------------------------------------------------------------
# Validation messages


@pytest.mark.parametrize(
    ("target", "tls", "message"),
    [
        (
            "https://x",
            True,
            "gRPC target must be host:port without a scheme; got 'https://x'; use 'x:443' with grpc_tls=True",
        ),
        ("http://node:9090", False, "use 'node:9090' with grpc_tls=False"),
        ("grpcs://node", True, "use 'node:443' with grpc_tls=True"),
        ("node", True, "gRPC target must include a port (host:port); got 'node'; e.g. 'node:443'"),
        ("node", False, "e.g. 'node:9090'"),
        ("node:", True, "port must be an integer in [1, 65535]"),
        ("node:70000", True, "port must be an integer in [1, 65535]"),
        ("node:9090/path", True, "without a path"),
        ("::1", False, "must include a port"),
        ("", True, "gRPC target must be host:port"),
    ],
)
def test_grpc_target_validation(target: str, tls: bool, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        DydxConfig.local().with_grpc(target, tls=tls)
    assert message in str(info.value)


def test_grpc_target_accepts_ipv6_literals() -> None:
    assert DydxConfig.local().with_grpc("[::1]:9090", tls=False).grpc_target == "[::1]:9090"


@pytest.mark.parametrize(
    ("http_url", "ws_url", "message"),
    [
        ("ftp://indexer.example", None, "indexer_http_url must use http or https"),
        ("indexer.example", None, "indexer_http_url must use http or https"),
        ("https://", None, "indexer_http_url has no host"),
        ("https://indexer.example?x=1", None, "must not carry a query"),
        ("https://user:pw@indexer.example", None, "must not embed credentials"),
        ("https://indexer.example:99999", None, "not a valid URL"),
        ("https://indexer.example", "https://indexer.example/v4/ws", "indexer_ws_url must use ws or wss"),
        ("", None, "indexer_http_url must be a non-empty URL"),
    ],
)
def test_url_validation(http_url: str, ws_url: str | None, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("?", r"\?")):
        DydxConfig.testnet().with_indexer(http_url, ws_url)


def test_rest_url_trailing_v4_is_stripped() -> None:
    c = DydxConfig.testnet().with_indexer("https://indexer.dydx.trade/v4", "wss://indexer.dydx.trade/v4/ws")
    assert c.indexer_http_url == "https://indexer.dydx.trade"
    assert c.rest_url("time") == "https://indexer.dydx.trade/v4/time"
    # A deployment behind a path prefix keeps its prefix.
    c = DydxConfig.testnet().with_indexer("https://gw.example/dydx/v4")
    assert c.rest_url("time") == "https://gw.example/dydx/v4/time"
    assert c.indexer_ws_url == "wss://gw.example/dydx/v4/ws"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"request_timeout": 0}, "request_timeout must be a positive number"),
        ({"connect_timeout": -1.0}, "connect_timeout must be a positive number"),
        ({"ws_heartbeat_timeout": float("inf")}, "ws_heartbeat_timeout must be a positive number"),
        ({"request_timeout": "5"}, "request_timeout must be a number of seconds"),
        ({"subaccount_number": -1}, r"subaccount_number must be in \[0, 128000\]; got -1"),
        ({"subaccount_number": 128_001}, r"subaccount_number must be in \[0, 128000\]; got 128001"),
        ({"subaccount_number": True}, "subaccount_number must be an int"),
        ({"rest_rate_limit": (0, 10.0)}, "rest_rate_limit requests must be a positive int"),
        ({"rest_rate_limit": (100, 0)}, "rest_rate_limit period must be a positive"),
        ({"rest_rate_limit": [100, 10.0]}, r"rest_rate_limit must be \(requests, period_seconds\)"),
        ({"short_block_window": 0}, "short_block_window must be a positive int"),
        ({"chain_id": " "}, "chain_id must be a non-empty string"),
        ({"grpc_tls": "yes"}, "grpc_tls must be a bool"),
        ({"retry": object()}, "retry must be an ExponentialBackoff"),
        ({"ssl_context": "ctx"}, "ssl_context must be an ssl.SSLContext"),
        ({"faucet_url": "ws://x"}, "faucet_url must use http or https"),
        ({"mnemonic": MNEMONIC}, "mnemonic must be a Secret"),
    ],
)
def test_field_validation(change: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        dataclasses.replace(DydxConfig.testnet(), **change)  # type: ignore[arg-type]


def test_subaccount_bounds_are_inclusive() -> None:
    assert DydxConfig.testnet().with_subaccount(0).subaccount_number == 0
    assert DydxConfig.testnet().with_subaccount(128_000).subaccount_number == 128_000


@pytest.mark.parametrize(
    ("phrase", "message"),
    [
        (MNEMONIC.rsplit(" ", 1)[0] + " glove", "checksum"),
        (MNEMONIC.replace("mandate", "zzzzzz"), "not in a BIP-39 word list"),
        (" ".join(MNEMONIC.split()[:23]), "it has 23 words"),
        ("", "it has 0 words"),
    ],
)
def test_invalid_mnemonics_are_refused_without_quoting_them(phrase: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        DydxConfig.testnet().with_mnemonic(phrase)
    _assert_no_secret(str(info.value))
    _assert_no_secret(repr(info.value))
    # No chained library exception carries the phrase into a logged traceback either.
    _assert_no_secret("".join(traceback.format_exception(info.value)))


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("abc", "64 hexadecimal characters"),
        ("g" * 64, "64 hexadecimal characters"),
        ("0" * 64, "outside the secp256k1 range"),
        ("f" * 64, "outside the secp256k1 range"),
    ],
)
def test_invalid_private_keys(key: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        DydxConfig.testnet().with_private_key(key)
    assert key not in str(info.value)


def test_both_credentials_are_refused() -> None:
    with pytest.raises(ConfigError, match="either mnemonic or private_key"):
        dataclasses.replace(DydxConfig.testnet(), mnemonic=Secret(MNEMONIC), private_key=Secret(PRIVATE_KEY))


# --------------------------------------------------------------------------------------------------
# Secrets never show


def test_secret_redaction() -> None:
    s = Secret(MNEMONIC)
    assert repr(s) == "Secret('***')"
    assert str(s) == "Secret('***')"
    assert f"{s}" == f"{s!r}" == f"{s!s}" == f"{s:>40}" == "Secret('***')"
    assert "%s %r" % (s, s) == "Secret('***') Secret('***')"  # noqa: UP031 - the %-path is what logging uses
    assert s.reveal() == MNEMONIC


def test_secret_equality_and_hash() -> None:
    assert Secret("a") == Secret("a")
    assert Secret("a") != Secret("b")
    assert Secret("a") != "a"
    assert hash(Secret("a")) == hash(Secret("a"))
    assert hash(Secret("a")) != hash("a")
    assert copy.copy(Secret("a")) == Secret("a")


def test_secret_refuses_pickling_and_non_strings() -> None:
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(Secret(MNEMONIC))
    with pytest.raises(ConfigError, match="expected a str"):
        Secret(b"bytes")  # type: ignore[arg-type]


def test_config_repr_str_and_logging_never_show_credentials(caplog: pytest.LogCaptureFixture) -> None:
    with_mnemonic = DydxConfig.testnet().with_mnemonic(MNEMONIC)
    with_key = DydxConfig.testnet().with_private_key(PRIVATE_KEY)
    for config in (with_mnemonic, with_key):
        for text in (repr(config), str(config), f"{config}", f"{config!r}", repr(dataclasses.asdict(config))):
            _assert_no_secret(text)
        assert "Secret('***')" in repr(config)
        assert "oegs-testnet.dydx.exchange:443" in repr(config)
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("test.config").info(
            "config %s / %r / %s", with_mnemonic, with_key, with_mnemonic.mnemonic
        )
        logging.getLogger("test.config").info("fields %s", dataclasses.astuple(with_key))
    assert caplog.records
    _assert_no_secret(caplog.text)


# --------------------------------------------------------------------------------------------------
# Environment


def test_from_env_presets_and_overrides() -> None:
    env = {
        "DYDX_NETWORK": "local",
        "DYDX_INDEXER_URL": "http://127.0.0.1:4100/",
        "DYDX_GRPC_TARGET": "127.0.0.1:4101",
        "DYDX_GRPC_TLS": "false",
        "DYDX_CHAIN_ID": "localdydxprotocol",
        "DYDX_MNEMONIC": MNEMONIC,
        "DYDX_SUBACCOUNT": "7",
        "DYDX_VERIFY_TLS": "1",
        "DYDX_REQUEST_TIMEOUT": "2.5",
        "UNRELATED": "x",
    }
    c = DydxConfig.from_env(env)
    assert c.network == "local"
    assert c.indexer_http_url == "http://127.0.0.1:4100"
    assert c.indexer_ws_url == "ws://127.0.0.1:4100/v4/ws"  # derived from the REST URL
    assert (c.grpc_target, c.grpc_tls) == ("127.0.0.1:4101", False)
    assert c.mnemonic == Secret(MNEMONIC)
    assert c.subaccount_number == 7
    assert c.request_timeout == 2.5


def test_from_env_minimal_and_prefix_and_empty_values() -> None:
    assert DydxConfig.from_env({"DYDX_NETWORK": "mainnet", "DYDX_MNEMONIC": ""}) == DydxConfig.mainnet()
    env = {"BOT_NETWORK": "testnet", "BOT_WS_URL": "wss://ws.example/v4/ws", "BOT_PRIVATE_KEY": PRIVATE_KEY}
    c = DydxConfig.from_env(env, prefix="BOT_")
    assert c.indexer_ws_url == "wss://ws.example/v4/ws"
    assert c.indexer_http_url == DydxConfig.testnet().indexer_http_url
    assert c.private_key == Secret(PRIVATE_KEY)
    assert DydxConfig.from_env({}, default_network="testnet") == DydxConfig.testnet()


def test_from_env_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DYDX_NETWORK", "testnet")
    monkeypatch.setenv("DYDX_SUBACCOUNT", "128")
    assert DydxConfig.from_env().subaccount_number == 128


def local_env(**variables: str) -> dict[str, str]:
    """An environment naming the local network, with ``variables`` besides."""
    return {"DYDX_NETWORK": "local", **variables}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "DYDX_NETWORK is not set"),
        ({"DYDX_NETWORK": "devnet"}, "DYDX_NETWORK: unknown network 'devnet'"),
        (local_env(DYDX_SUBACCOUNT="-1"), "DYDX_SUBACCOUNT: expected an integer"),
        (local_env(DYDX_SUBACCOUNT="200000"), "DYDX_SUBACCOUNT: subaccount_number must be in"),
        (local_env(DYDX_GRPC_TLS="maybe"), "DYDX_GRPC_TLS: expected a boolean"),
        (local_env(DYDX_VERIFY_TLS="2"), "DYDX_VERIFY_TLS: expected a boolean"),
        (local_env(DYDX_REQUEST_TIMEOUT="soon"), "DYDX_REQUEST_TIMEOUT: expected a number"),
        (local_env(DYDX_REQUEST_TIMEOUT="-3"), "DYDX_REQUEST_TIMEOUT: request_timeout must be"),
        (local_env(DYDX_REQUEST_TIMEOUT="nan"), "DYDX_REQUEST_TIMEOUT: request_timeout must be"),
        (local_env(DYDX_GRPC_TARGET="https://x"), "DYDX_GRPC_TARGET: gRPC target must be"),
        (local_env(DYDX_INDEXER_URL="ftp://x"), "DYDX_INDEXER_URL: indexer_http_url must use"),
        (local_env(DYDX_WS_URL="http://x"), "DYDX_WS_URL: indexer_ws_url must use ws or wss"),
        (local_env(DYDX_MNEMONIC="one two three"), "DYDX_MNEMONIC: mnemonic is not a valid"),
        (local_env(DYDX_PRIVATE_KEY="xyz"), "DYDX_PRIVATE_KEY: private key must be"),
        ({"DYDX_NETWORK": "mainnet", "DYDX_VERIFY_TLS": "off"}, "insecure transport on mainnet"),
        (local_env(DYDX_MNEMONIC=MNEMONIC, DYDX_PRIVATE_KEY=PRIVATE_KEY), "either mnemonic or private_key"),
    ],
)
def test_from_env_errors_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        DydxConfig.from_env(env)


def test_from_env_insecure_mainnet_needs_the_flag_variable() -> None:
    env = {"DYDX_NETWORK": "mainnet", "DYDX_VERIFY_TLS": "off", "DYDX_ALLOW_INSECURE_MAINNET": "yes"}
    assert DydxConfig.from_env(env).verify_tls is False


def test_from_env_errors_never_quote_a_secret() -> None:
    bad = MNEMONIC.rsplit(" ", 1)[0] + " glove"
    with pytest.raises(ConfigError) as info:
        DydxConfig.from_env({"DYDX_NETWORK": "local", "DYDX_MNEMONIC": bad})
    _assert_no_secret(str(info.value))
    with pytest.raises(ConfigError) as info:
        DydxConfig.from_env({"DYDX_NETWORK": "local", "DYDX_PRIVATE_KEY": "0" * 64})
    assert "0" * 64 not in str(info.value)
