"""The one configuration value every client takes: endpoints, chain, credentials, limits.

:class:`DydxConfig` is a frozen value. Start from a preset (:meth:`DydxConfig.mainnet`,
:meth:`DydxConfig.testnet`, :meth:`DydxConfig.local`) or from the environment
(:meth:`DydxConfig.from_env`), then refine it with the ``with_*`` builders; each returns a new,
validated config. Credentials live in :class:`Secret`, whose ``repr`` and ``str`` are redacted, so a
config can be logged safely.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import ipaddress
import logging
import math
import os
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

from nautilus_dydx.core.errors import ConfigError
from nautilus_dydx.core.retry import ExponentialBackoff

__all__ = [
    "LOCAL_CHAIN_ID",
    "MAINNET_CHAIN_ID",
    "MAX_SUBACCOUNT_NUMBER",
    "TESTNET_CHAIN_ID",
    "USDC_DENOM",
    "DydxConfig",
    "Secret",
]

_log = logging.getLogger(__name__)

MAINNET_CHAIN_ID: Final = "dydx-mainnet-1"
TESTNET_CHAIN_ID: Final = "dydx-testnet-4"
LOCAL_CHAIN_ID: Final = "localdydxprotocol"
USDC_DENOM: Final = "ibc/8E27BA2D5493AF5636760E354E46004562C46AB7EC0CC4C1CA14E9E20E2545B5"
"""The USDC collateral denom (asset id 0); the same string on mainnet, testnet and local chains."""
MAX_SUBACCOUNT_NUMBER: Final = 128_000
"""Largest subaccount number the chain and the indexer accept."""

# secp256k1 group order: a private key is an integer in [1, n - 1].
_SECP256K1_ORDER: Final = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_BIP39_WORD_COUNTS: Final = frozenset({12, 15, 18, 21, 24})
_HEX_KEY = re.compile(r"(?:0x)?[0-9a-fA-F]{64}")
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off"})


class Secret:
    """A credential (BIP-39 mnemonic or hex private key) that never shows itself by accident.

    ``repr``, ``str`` and f-strings give ``Secret('***')``; only :meth:`reveal` returns the value.
    Equality compares in constant time; the hash is derived from a digest, not from the value.

    Args:
        value: the secret text.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise ConfigError(f"Secret: expected a str; got {type(value).__name__}")
        self._value = value

    def reveal(self) -> str:
        """The secret text. Call it only where the value is consumed (key derivation, signing)."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __format__(self, format_spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(hashlib.sha256(self._value.encode()).digest())

    def __copy__(self) -> Secret:
        return self  # immutable: copies may share the one value

    def __deepcopy__(self, memo: dict[int, object]) -> Secret:
        return self

    def __reduce__(self) -> Any:
        # Pickling would write the value to disk or to another process; refuse it rather than leak.
        raise TypeError("a Secret cannot be pickled")


def _validate_mnemonic(secret: Secret) -> Secret:
    """The mnemonic with whitespace normalised; ConfigError when it is not a valid BIP-39 phrase.

    Messages never quote the phrase or any of its words.
    """
    from bip_utils import Bip39MnemonicValidator  # imported lazily: bip_utils is slow to import
    from bip_utils.utils.mnemonic.mnemonic_ex import MnemonicChecksumError

    words = secret.reveal().split()
    phrase = " ".join(words)
    if len(words) not in _BIP39_WORD_COUNTS:
        raise ConfigError(
            f"mnemonic is not a valid BIP-39 phrase: it has {len(words)} words; expected 12, 15, 18, 21 or 24"
        )
    try:
        Bip39MnemonicValidator().Validate(phrase)
    except MnemonicChecksumError:
        raise ConfigError(
            f"mnemonic is not a valid BIP-39 phrase: the checksum of its {len(words)} words does not match "
            "(a word is wrong or out of order)"
        ) from None
    except ValueError:
        raise ConfigError(
            "mnemonic is not a valid BIP-39 phrase: some words are not in a BIP-39 word list"
        ) from None
    return Secret(phrase)


def _validate_private_key(secret: Secret) -> Secret:
    text = secret.reveal().strip()
    if not _HEX_KEY.fullmatch(text):
        raise ConfigError("private key must be 64 hexadecimal characters (32 bytes), optionally prefixed 0x")
    text = text.removeprefix("0x").lower()
    if not 0 < int(text, 16) < _SECP256K1_ORDER:
        raise ConfigError("private key is outside the secp256k1 range [1, n-1]")
    return Secret(text)


def _host_for_url(host: str) -> str:
    """Bracket an IPv6 literal for use in a URL or a gRPC target."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return host
    return f"[{address}]" if address.version == 6 else host


def _normalise_url(name: str, url: str, schemes: tuple[str, ...]) -> str:
    if not isinstance(url, str) or not url.strip():
        raise ConfigError(f"{name} must be a non-empty URL; got {url!r}")
    url = url.strip()
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a malformed port
    except ValueError as exc:
        raise ConfigError(f"{name} is not a valid URL: {url!r} ({exc})") from None
    if parts.scheme.lower() not in schemes:
        raise ConfigError(f"{name} must use {' or '.join(schemes)}; got {url!r}")
    if not parts.hostname:
        raise ConfigError(f"{name} has no host: {url!r}")
    if parts.query or parts.fragment:
        raise ConfigError(f"{name} must not carry a query or a fragment: {url!r}")
    if parts.username or parts.password:
        raise ConfigError(f"{name} must not embed credentials")
    netloc = _host_for_url(parts.hostname) + (f":{parts.port}" if parts.port is not None else "")
    return f"{parts.scheme.lower()}://{netloc}{parts.path.rstrip('/')}"


def _normalise_rest_url(url: str) -> str:
    url = _normalise_url("indexer_http_url", url, ("http", "https"))
    # The venue's docs list the REST base with "/v4"; the clients add "/v4/..." themselves.
    if url.endswith("/v4"):
        url = url[: -len("/v4")]
    return url


def _check_grpc_target(target: str, tls: bool) -> str:
    if not isinstance(target, str) or not target.strip():
        raise ConfigError(f"gRPC target must be host:port; got {target!r}")
    target = target.strip()
    if "://" in target:
        parts = urlsplit(target)
        tls_hint = parts.scheme.lower() in ("https", "grpcs")
        try:
            port = parts.port or (443 if tls_hint else None)
        except ValueError:
            port = None
        host = parts.hostname or "host"
        suggestion = f"{_host_for_url(host)}:{port if port is not None else '<port>'}"
        raise ConfigError(
            f"gRPC target must be host:port without a scheme; got {target!r}; "
            f"use {suggestion!r} with grpc_tls={tls_hint}"
        )
    if "/" in target:
        raise ConfigError(f"gRPC target must be host:port without a path; got {target!r}")
    host, sep, port_text = target.rpartition(":")
    if not sep or not host or host.endswith(":") or (":" in host and not host.startswith("[")):
        example = f"{_host_for_url(target)}:{443 if tls else 9090}"
        raise ConfigError(f"gRPC target must include a port (host:port); got {target!r}; e.g. {example!r}")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(f"gRPC target port must be an integer in [1, 65535]; got {target!r}")
    return target


def _check_positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{name} must be a number of seconds; got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be a positive number of seconds; got {value!r}")
    return float(value)


def _ws_url_for(http_url: str) -> str:
    """The indexer WebSocket URL served beside a REST base URL."""
    parts = urlsplit(http_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return f"{scheme}://{parts.netloc}{parts.path}/v4/ws"


def _unverified(context: ssl.SSLContext) -> str | None:
    """What a client context skips of the server check, or None when it verifies fully."""
    # A client context with CERT_OPTIONAL still requires a certificate (the ssl docs); only
    # CERT_NONE skips it. Without the host name check any valid certificate passes for any host.
    if context.verify_mode == ssl.CERT_NONE:
        return "verify_mode=CERT_NONE"
    if not context.check_hostname:
        return "check_hostname=False"
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class DydxConfig:
    """Everything a client needs to reach one dYdX v4 deployment, as one immutable value.

    Build it with a preset and the ``with_*`` methods rather than field by field; every construction
    is validated and raises :class:`~nautilus_dydx.core.errors.ConfigError` with a message that names
    the field and the fix.

    Attributes:
        network: ``"mainnet"``, ``"testnet"``, ``"local"`` or any label of your own.
        indexer_http_url: the indexer REST base, WITHOUT ``/v4`` (``https://indexer.dydx.trade``); a
            trailing ``/v4`` or ``/`` is removed. Clients call :meth:`rest_url`.
        indexer_ws_url: the full indexer WebSocket URL (``wss://indexer.dydx.trade/v4/ws``).
        grpc_target: the validator gRPC endpoint as ``host:port``, no scheme.
        grpc_tls: ``True`` for a TLS channel, ``False`` for plaintext (local nodes only).
        chain_id: the chain id signed into every transaction.
        native_denom: the fee / staking denom (``adydx`` on mainnet, ``adv4tnt`` elsewhere).
        usdc_denom: the USDC collateral denom.
        faucet_url: the faucet base URL, ``None`` where there is none (mainnet).
        verify_tls: verify server certificates (REST, WebSocket); turning it off on mainnet needs
            ``allow_insecure_mainnet=True``. With an ``ssl_context`` it says what the context does:
            ``False`` when the context skips the certificate (``CERT_NONE``) or host name check.
        ssl_context: a custom ``ssl.SSLContext`` (private CA, client certificates) used instead of the
            default verification; not part of equality. A context that does not verify counts as
            ``verify_tls=False`` (the mainnet opt-in included); it is checked when the config is
            built.
        allow_insecure_mainnet: the explicit opt-in for weakening transport security on mainnet.
        mnemonic: the BIP-39 phrase of the trading account, or ``None`` for read-only use.
        private_key: a hex secp256k1 private key, the alternative to ``mnemonic``.
        subaccount_number: the subaccount traded, in ``[0, 128000]``.
        request_timeout: seconds for one REST request or one gRPC call, end to end.
        connect_timeout: seconds to establish a connection (TCP + TLS + WebSocket upgrade).
        ws_heartbeat_timeout: seconds without any frame after which the WebSocket is considered dead and
            reconnected. The server pings every 30 s, so keep it above that.
        rest_rate_limit: ``(requests, period_seconds)`` this client allows itself against the indexer.
        retry: the back-off policy shared by the transports.
        short_block_window: how many blocks ahead a short-term order's good-til-block may be (40 on
            protocol v9; 20 on older deployments).
    """

    network: str
    indexer_http_url: str
    indexer_ws_url: str
    grpc_target: str
    grpc_tls: bool
    chain_id: str
    native_denom: str
    usdc_denom: str = USDC_DENOM
    faucet_url: str | None = None
    verify_tls: bool = True
    ssl_context: ssl.SSLContext | None = field(default=None, compare=False)
    allow_insecure_mainnet: bool = False
    mnemonic: Secret | None = None
    private_key: Secret | None = None
    subaccount_number: int = 0
    request_timeout: float = 10.0
    connect_timeout: float = 5.0
    ws_heartbeat_timeout: float = 45.0
    rest_rate_limit: tuple[int, float] = (100, 10.0)
    retry: ExponentialBackoff = field(default_factory=ExponentialBackoff)
    short_block_window: int = 40

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalised values are written once, here
        for name in ("network", "chain_id", "native_denom", "usdc_denom"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"{name} must be a non-empty string; got {value!r}")
        set_(self, "indexer_http_url", _normalise_rest_url(self.indexer_http_url))
        set_(self, "indexer_ws_url", _normalise_url("indexer_ws_url", self.indexer_ws_url, ("ws", "wss")))
        if self.faucet_url is not None:
            set_(self, "faucet_url", _normalise_url("faucet_url", self.faucet_url, ("http", "https")))
        for name in ("grpc_tls", "verify_tls", "allow_insecure_mainnet"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be a bool; got {getattr(self, name)!r}")
        set_(self, "grpc_target", _check_grpc_target(self.grpc_target, self.grpc_tls))
        if self.ssl_context is not None and not isinstance(self.ssl_context, ssl.SSLContext):
            raise ConfigError(f"ssl_context must be an ssl.SSLContext; got {type(self.ssl_context).__name__}")
        if self.ssl_context is not None:
            unverified = _unverified(self.ssl_context)
            if not self.verify_tls and not unverified:
                raise ConfigError(
                    "pass either ssl_context or verify_tls=False, not both "
                    "(the context verifies certificates and host names)"
                )
            # verify_tls reports what the context does, so that repr, the mainnet guard and every
            # reader see an unverifying context for what it is.
            set_(self, "verify_tls", not unverified)
        self._check_credentials()
        number = self.subaccount_number
        if isinstance(number, bool) or not isinstance(number, int):
            raise ConfigError(f"subaccount_number must be an int; got {number!r}")
        if not 0 <= number <= MAX_SUBACCOUNT_NUMBER:
            raise ConfigError(f"subaccount_number must be in [0, {MAX_SUBACCOUNT_NUMBER}]; got {number}")
        for name in ("request_timeout", "connect_timeout", "ws_heartbeat_timeout"):
            set_(self, name, _check_positive(name, getattr(self, name)))
        self._check_rate_limit()
        if not isinstance(self.retry, ExponentialBackoff):
            raise ConfigError(f"retry must be an ExponentialBackoff; got {type(self.retry).__name__}")
        window = self.short_block_window
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ConfigError(f"short_block_window must be a positive int; got {window!r}")
        self._check_mainnet_security()

    def _check_credentials(self) -> None:
        if self.mnemonic is not None and self.private_key is not None:
            raise ConfigError("set either mnemonic or private_key, not both")
        if self.mnemonic is not None:
            if not isinstance(self.mnemonic, Secret):
                raise ConfigError("mnemonic must be a Secret (use with_mnemonic(str))")
            object.__setattr__(self, "mnemonic", _validate_mnemonic(self.mnemonic))
        if self.private_key is not None:
            if not isinstance(self.private_key, Secret):
                raise ConfigError("private_key must be a Secret (use with_private_key(str))")
            object.__setattr__(self, "private_key", _validate_private_key(self.private_key))

    def _check_rate_limit(self) -> None:
        limit = self.rest_rate_limit
        if not isinstance(limit, tuple) or len(limit) != 2:
            raise ConfigError(f"rest_rate_limit must be (requests, period_seconds); got {limit!r}")
        requests, period = limit
        if isinstance(requests, bool) or not isinstance(requests, int) or requests < 1:
            raise ConfigError(f"rest_rate_limit requests must be a positive int; got {requests!r}")
        period = _check_positive("rest_rate_limit period", period)
        object.__setattr__(self, "rest_rate_limit", (requests, period))

    def _check_mainnet_security(self) -> None:
        if not self.is_mainnet or self.allow_insecure_mainnet:
            return
        problems = []
        unverified = None if self.ssl_context is None else _unverified(self.ssl_context)
        if unverified:
            problems.append(f"verify_tls=False: ssl_context has {unverified}")
        elif not self.verify_tls:
            problems.append("verify_tls=False")
        if not self.grpc_tls:
            problems.append("grpc_tls=False")
        if not self.indexer_http_url.startswith("https://"):
            problems.append("plain http indexer URL")
        if not self.indexer_ws_url.startswith("wss://"):
            problems.append("plain ws WebSocket URL")
        if problems:
            raise ConfigError(
                f"insecure transport on mainnet ({', '.join(problems)}); "
                "pass allow_insecure_mainnet=True (with_tls(..., allow_insecure_mainnet=True)) if you mean it"
            )

    # ----------------------------------------------------------------------------------------------
    # Presets

    @classmethod
    def mainnet(cls) -> DydxConfig:
        """dYdX v4 mainnet: ``indexer.dydx.trade``, gRPC ``oegs.dydx.trade:443`` over TLS."""
        return cls(
            network="mainnet",
            indexer_http_url="https://indexer.dydx.trade",
            indexer_ws_url="wss://indexer.dydx.trade/v4/ws",
            grpc_target="oegs.dydx.trade:443",
            grpc_tls=True,
            chain_id=MAINNET_CHAIN_ID,
            native_denom="adydx",
        )

    @classmethod
    def testnet(cls) -> DydxConfig:
        """dYdX v4 public testnet (``dydx-testnet-4``) with its faucet."""
        return cls(
            network="testnet",
            indexer_http_url="https://indexer.v4testnet.dydx.exchange",
            indexer_ws_url="wss://indexer.v4testnet.dydx.exchange/v4/ws",
            grpc_target="oegs-testnet.dydx.exchange:443",
            grpc_tls=True,
            chain_id=TESTNET_CHAIN_ID,
            native_denom="adv4tnt",
            faucet_url="https://faucet.v4testnet.dydx.exchange",
        )

    @classmethod
    def local(cls, host: str = "127.0.0.1", port: int = 3002, grpc_port: int = 9090) -> DydxConfig:
        """The embedded emulator (or a local dev chain): REST and WebSocket share ``port``.

        Args:
            host: the host the emulator listens on.
            port: the indexer port (REST at ``http://host:port``, WebSocket at ``ws://host:port/v4/ws``,
                faucet at ``http://host:port``).
            grpc_port: the plaintext gRPC port of the validator.
        """
        for name, value in (("port", port), ("grpc_port", grpc_port)):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
                raise ConfigError(f"local(): {name} must be an int in [1, 65535]; got {value!r}")
        where = _host_for_url(host)
        return cls(
            network="local",
            indexer_http_url=f"http://{where}:{port}",
            indexer_ws_url=f"ws://{where}:{port}/v4/ws",
            grpc_target=f"{where}:{grpc_port}",
            grpc_tls=False,
            chain_id=LOCAL_CHAIN_ID,
            native_denom="adv4tnt",
            faucet_url=f"http://{where}:{port}",
        )

    @classmethod
    def preset(cls, network: str) -> DydxConfig:
        """The preset named ``mainnet``, ``testnet`` or ``local`` (case-insensitive)."""
        name = network.strip().lower() if isinstance(network, str) else network
        if name == "mainnet":
            return cls.mainnet()
        if name == "testnet":
            return cls.testnet()
        if name == "local":
            return cls.local()
        raise ConfigError(f"unknown network {network!r}; expected one of mainnet, testnet, local")

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        prefix: str = "DYDX_",
        *,
        default_network: str | None = None,
    ) -> DydxConfig:
        """Build from environment variables (empty values count as unset).

        ``{prefix}NETWORK`` (mainnet | testnet | local) picks the preset; it is required unless
        ``default_network`` is given. Then, each when set: ``INDEXER_URL``, ``WS_URL`` (derived from
        ``INDEXER_URL`` when only that is set), ``GRPC_TARGET``, ``GRPC_TLS``, ``CHAIN_ID``,
        ``MNEMONIC``, ``PRIVATE_KEY``, ``SUBACCOUNT``, ``VERIFY_TLS``, ``REQUEST_TIMEOUT``,
        ``FAUCET_URL``, ``ALLOW_INSECURE_MAINNET``. Booleans accept 1/0, true/false, yes/no, on/off.

        Args:
            environ: the variables to read; ``os.environ`` when ``None``.
            prefix: the common prefix of the variable names.
            default_network: the preset used when ``{prefix}NETWORK`` is unset.

        Raises:
            ConfigError: a value is malformed; the message names the variable (never a secret's value).
        """
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(prefix + name)
            return value.strip() if value is not None and value.strip() else None

        def fail(name: str, exc: ConfigError | str) -> ConfigError:
            return ConfigError(f"{prefix}{name}: {exc}")

        def parse_bool(name: str, text: str) -> bool:
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
            raise fail(name, f"expected a boolean (1/0, true/false, yes/no, on/off); got {text!r}")

        network = get("NETWORK") or default_network
        if network is None:
            raise ConfigError(f"{prefix}NETWORK is not set; expected one of mainnet, testnet, local")
        try:
            config = cls.preset(network)
        except ConfigError as exc:
            raise fail("NETWORK", exc) from None

        changes: dict[str, Any] = {}
        ws_url = get("WS_URL")
        if (http_url := get("INDEXER_URL")) is not None:
            changes["indexer_http_url"] = http_url
            if ws_url is None:
                try:
                    ws_url = _ws_url_for(_normalise_rest_url(http_url))
                except ConfigError as exc:
                    raise fail("INDEXER_URL", exc) from None
        if ws_url is not None:
            changes["indexer_ws_url"] = ws_url
        if (text := get("GRPC_TARGET")) is not None:
            changes["grpc_target"] = text
        for name, attr in (
            ("GRPC_TLS", "grpc_tls"),
            ("VERIFY_TLS", "verify_tls"),
            ("ALLOW_INSECURE_MAINNET", "allow_insecure_mainnet"),
        ):
            if (text := get(name)) is not None:
                changes[attr] = parse_bool(name, text)
        if (text := get("CHAIN_ID")) is not None:
            changes["chain_id"] = text
        if (text := get("FAUCET_URL")) is not None:
            changes["faucet_url"] = text
        if (text := get("MNEMONIC")) is not None:
            changes["mnemonic"] = Secret(text)
        if (text := get("PRIVATE_KEY")) is not None:
            changes["private_key"] = Secret(text)
        if (text := get("SUBACCOUNT")) is not None:
            if not text.isdigit() or not text.isascii():
                raise fail("SUBACCOUNT", f"expected an integer in [0, {MAX_SUBACCOUNT_NUMBER}]; got {text!r}")
            changes["subaccount_number"] = int(text)
        if (text := get("REQUEST_TIMEOUT")) is not None:
            try:
                changes["request_timeout"] = float(text)
            except ValueError:
                raise fail("REQUEST_TIMEOUT", f"expected a number of seconds; got {text!r}") from None

        # Validate each override on its own first so that the error names the variable it came from.
        env_names = {
            "indexer_http_url": "INDEXER_URL",
            "indexer_ws_url": "WS_URL" if get("WS_URL") is not None else "INDEXER_URL",
            "grpc_target": "GRPC_TARGET",
            "grpc_tls": "GRPC_TLS",
            "verify_tls": "VERIFY_TLS",
            "allow_insecure_mainnet": "ALLOW_INSECURE_MAINNET",
            "chain_id": "CHAIN_ID",
            "faucet_url": "FAUCET_URL",
            "mnemonic": "MNEMONIC",
            "private_key": "PRIVATE_KEY",
            "subaccount_number": "SUBACCOUNT",
            "request_timeout": "REQUEST_TIMEOUT",
        }
        loosened = {
            "allow_insecure_mainnet": True,
            "mnemonic": None,
            "private_key": None,
        }
        for attr, value in changes.items():
            try:
                dataclasses.replace(config, **{**loosened, attr: value})
            except ConfigError as exc:
                raise fail(env_names[attr], exc) from None
        try:
            return dataclasses.replace(config, **changes)
        except ConfigError as exc:
            raise ConfigError(f"{prefix}* variables: {exc}") from None

    # ----------------------------------------------------------------------------------------------
    # Builders: each returns a new validated config

    def _with(self, **changes: Any) -> DydxConfig:
        return dataclasses.replace(self, **changes)

    def with_indexer(self, http_url: str, ws_url: str | None = None) -> DydxConfig:
        """Point at another indexer. Without ``ws_url``, the WebSocket is ``{http_url}/v4/ws``
        with ``http`` → ``ws`` and ``https`` → ``wss``."""
        if ws_url is None:
            ws_url = _ws_url_for(_normalise_rest_url(http_url))
        return self._with(indexer_http_url=http_url, indexer_ws_url=ws_url)

    def with_grpc(self, target: str, *, tls: bool) -> DydxConfig:
        """Point at another validator: ``target`` is ``host:port``; ``tls`` says how to connect."""
        return self._with(grpc_target=target, grpc_tls=tls)

    def with_chain(self, chain_id: str, *, native_denom: str | None = None) -> DydxConfig:
        """Use another chain id (and fee denom), e.g. for a private deployment."""
        return self._with(chain_id=chain_id, native_denom=native_denom or self.native_denom)

    def with_faucet(self, url: str | None) -> DydxConfig:
        """Use another faucet base URL, or none."""
        return self._with(faucet_url=url)

    def with_mnemonic(self, mnemonic: str | Secret) -> DydxConfig:
        """Trade with the account of a BIP-39 ``mnemonic`` (replaces any private key)."""
        secret = mnemonic if isinstance(mnemonic, Secret) else Secret(mnemonic)
        return self._with(mnemonic=secret, private_key=None)

    def with_private_key(self, private_key: str | Secret) -> DydxConfig:
        """Trade with a hex secp256k1 private key (replaces any mnemonic)."""
        secret = private_key if isinstance(private_key, Secret) else Secret(private_key)
        return self._with(private_key=secret, mnemonic=None)

    def without_credentials(self) -> DydxConfig:
        """A read-only copy: no mnemonic, no private key."""
        return self._with(mnemonic=None, private_key=None)

    def with_subaccount(self, number: int) -> DydxConfig:
        """Trade subaccount ``number`` (0 … 128000)."""
        return self._with(subaccount_number=number)

    def with_timeouts(
        self,
        *,
        request: float | None = None,
        connect: float | None = None,
        ws_heartbeat: float | None = None,
    ) -> DydxConfig:
        """Change the given timeouts (seconds); the others are kept."""
        changes: dict[str, float] = {}
        if request is not None:
            changes["request_timeout"] = request
        if connect is not None:
            changes["connect_timeout"] = connect
        if ws_heartbeat is not None:
            changes["ws_heartbeat_timeout"] = ws_heartbeat
        return self._with(**changes)

    def with_tls(
        self,
        *,
        verify: bool = True,
        ssl_context: ssl.SSLContext | None = None,
        allow_insecure_mainnet: bool = False,
    ) -> DydxConfig:
        """Choose how server certificates are checked.

        Args:
            verify: ``False`` disables certificate verification (refused on mainnet unless
                ``allow_insecure_mainnet``).
            ssl_context: a context of your own (private CA, client certificates); implies verification
                as that context defines it. One that skips the certificate or host name check
                (``verify_mode=CERT_NONE``, ``check_hostname=False``) is treated as ``verify=False``.
            allow_insecure_mainnet: the explicit opt-in for weakened transport security on mainnet.
        """
        if not verify or (ssl_context is not None and _unverified(ssl_context)):
            _log.warning("TLS certificate verification disabled for network %s", self.network)
        return self._with(
            verify_tls=verify, ssl_context=ssl_context, allow_insecure_mainnet=allow_insecure_mainnet
        )

    def with_retry(self, policy: ExponentialBackoff) -> DydxConfig:
        """Use another back-off policy in every transport."""
        return self._with(retry=policy)

    def with_rate_limit(self, requests: int, period: float) -> DydxConfig:
        """Allow at most ``requests`` indexer REST requests per ``period`` seconds."""
        return self._with(rest_rate_limit=(requests, period))

    def with_short_block_window(self, blocks: int) -> DydxConfig:
        """The deployment's ShortBlockWindow (40 on protocol v9, 20 before)."""
        return self._with(short_block_window=blocks)

    # ----------------------------------------------------------------------------------------------
    # Helpers

    @property
    def is_mainnet(self) -> bool:
        """True when the chain id is mainnet's, whatever the ``network`` label says."""
        return self.chain_id == MAINNET_CHAIN_ID

    @property
    def has_credentials(self) -> bool:
        """True when a mnemonic or a private key is set (the config can sign)."""
        return self.mnemonic is not None or self.private_key is not None

    @property
    def http_ssl(self) -> ssl.SSLContext | bool:
        """The ``ssl`` argument for aiohttp: a context, ``True`` (default checks) or ``False`` (none)."""
        if self.ssl_context is not None:
            return self.ssl_context
        return self.verify_tls

    def rest_url(self, path: str) -> str:
        """The URL of an indexer REST route: ``rest_url("perpetualMarkets")`` →
        ``{indexer_http_url}/v4/perpetualMarkets``."""
        return f"{self.indexer_http_url}/v4/{path.lstrip('/')}"

    def __repr__(self) -> str:
        if self.mnemonic is not None:
            credentials = "mnemonic=Secret('***')"
        elif self.private_key is not None:
            credentials = "private_key=Secret('***')"
        else:
            credentials = "credentials=None"
        return (
            f"DydxConfig(network={self.network!r}, chain_id={self.chain_id!r}, "
            f"indexer_http_url={self.indexer_http_url!r}, indexer_ws_url={self.indexer_ws_url!r}, "
            f"grpc_target={self.grpc_target!r}, grpc_tls={self.grpc_tls}, verify_tls={self.verify_tls}, "
            f"{credentials}, subaccount_number={self.subaccount_number})"
        )
