"""Transaction decoding, signature verification and the ante rules of a dYdX v4 validator (sans-I/O).

This is what a validator does with a broadcast ``TxRaw`` before the clob sees its messages
(protocol reference §6; dydxprotocol/v4-chain ``protocol/app/ante.go`` and the cosmos-sdk fork it
runs on). Nothing here touches a socket or an event loop: :func:`decode_tx` turns bytes into a
:class:`DecodedTx`, :meth:`AnteHandler.run` applies the checks in the chain's order and answers an
:class:`AnteOutcome` describing what to write, and :meth:`AnteHandler.commit` writes it once the
messages themselves succeeded (the chain branches its store during CheckTx and only writes the branch
when the whole transaction passed, so a rejected order never consumes a sequence number).

Order of the checks, as the chain runs them:

1. decode (sdk 2): ADR-027 ``TxRaw`` (fields 1, 2, 3 in order, length-delimited), no unknown fields in
   ``TxRaw`` / ``AuthInfo``, only non-critical (tag >= 1024) unknown fields in ``TxBody``, known
   message and public key types;
2. every message's ``ValidateBasic`` (at least one message, sdk 18), before any ante decorator;
3. ``Tx.ValidateBasic``: a fee is present, its gas limit is at most 2^63 - 1 (sdk 18), no fee coin is
   negative (sdk 13), signatures are present (sdk 15), one signature per signer (sdk 4);
4. timeout height (sdk 30), memo length (sdk 12);
5. fees, for transactions without a clob message (those run with a free, infinite gas meter and
   never reach the fee decorator): the gas limit must at least cover the 10 gas per transaction byte
   that ``ConsumeGasForTxSize`` charges first (sdk 11; a lower bound of the chain's metering, see
   :func:`tx_size_gas`); in CheckTx the fee must reach ``ceil(gas_limit * price)`` in at least one
   denom of the node's minimum gas prices (sdk 13); the fee payer must exist (sdk 9), the fee coins
   must be valid (sorted, positive; sdk 13) and the wallet must hold them (sdk 5);
6. replay protection, unless every message is a short-term clob message: the signer's account exists
   (sdk 9); a sequence >= 2^40 is a timestamp nonce (within ±30 s of the block time, not among the
   account's recent nonces), any other sequence must equal the account's (sdk 32);
7. public key: the signer info's key must hash to the signer address (sdk 8) and is stored on the
   account on first use; the account must exist (sdk 9);
8. signature: secp256k1, low-S, over SHA-256 of ``SignDoc{body_bytes, auth_info_bytes, chain_id,
   account_number}`` built from the exact bytes in the ``TxRaw`` (sdk 4);
9. a short-term clob message must be alone in its transaction (sdk 18);
10. the sequence is incremented unless the transaction is short-term or uses a timestamp nonce;
11. for transactions with clob messages: only clob messages, plus at most one ``MsgCreateTransfer``
    (sdk 18).

The clob checks themselves (rate limits, windows, matching) are the engine's; see
:mod:`.messages` for the mapping of messages to engine calls.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import bech32  # type: ignore[import-untyped,unused-ignore]
import coincurve
from google.protobuf.message import DecodeError  # type: ignore[import-untyped,unused-ignore]
from v4_proto.cosmos.crypto.secp256k1 import keys_pb2
from v4_proto.cosmos.tx.signing.v1beta1 import signing_pb2
from v4_proto.cosmos.tx.v1beta1 import tx_pb2

from nautilus_dydx.emulator.engine.accounts import Account
from nautilus_dydx.emulator.engine.chain import ChainEngine
from nautilus_dydx.emulator.engine.errors import EngineError
from nautilus_dydx.emulator.params import NATIVE_DENOM, USDC_DENOM
from nautilus_dydx.emulator.validator import messages

__all__ = [
    "DEFAULT_MIN_GAS_PRICES",
    "MAX_GAS_WANTED",
    "MAX_MEMO_CHARACTERS",
    "PUBKEY_TYPE_URL",
    "SDK_MESSAGES",
    "SECP256K1_ORDER",
    "TIMESTAMP_NONCE_CUTOFF",
    "AnteHandler",
    "AnteOutcome",
    "DecodedTx",
    "TimestampNonces",
    "address_of_pubkey",
    "decode_tx",
    "format_min_gas_prices",
    "parse_min_gas_prices",
    "required_fee",
    "sdk_error",
    "sign_doc_bytes",
    "tx_hash",
    "tx_size_gas",
    "verify_signature",
]

log = logging.getLogger(__name__)

PUBKEY_TYPE_URL = "/cosmos.crypto.secp256k1.PubKey"
SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
TIMESTAMP_NONCE_CUTOFF = 1 << 40
#: accountplus keeper: nonces accepted within this many ms of the block time, 20 remembered.
TIMESTAMP_NONCE_WINDOW_MS = 30_000
MAX_TIMESTAMP_NONCES = 20
#: x/auth default params.
MAX_MEMO_CHARACTERS = 256
TX_SIG_LIMIT = 7
TX_SIZE_COST_PER_BYTE = 10
#: ``Tx.ValidateBasic`` refuses a larger ``Fee.gas_limit`` (it must fit a signed 64-bit integer).
MAX_GAS_WANTED = (1 << 63) - 1
#: dydxprotocold's default ``minimum-gas-prices`` (its ``app.toml``), per unit of gas, in the node's
#: own format: 0.025 micro-USDC or 25e9 of the native token (protocol reference §1.1, §6.4).
DEFAULT_MIN_GAS_PRICES = f"0.025{USDC_DENOM},25000000000{NATIVE_DENOM}"
ADDRESS_PREFIX = "dydx"

#: Registered texts of the cosmos-sdk root codespace errors a broadcast can get.
SDK_MESSAGES: dict[int, str] = {
    2: "tx parse error",
    3: "invalid sequence",
    4: "unauthorized",
    5: "insufficient funds",
    7: "invalid address",
    8: "invalid pubkey",
    9: "unknown address",
    11: "out of gas",
    12: "memo too large",
    13: "insufficient fee",
    14: "maximum number of signatures exceeded",
    15: "no signatures supplied",
    18: "invalid request",
    19: "tx already in mempool",
    30: "tx timeout height",
    32: "incorrect account sequence",
}

# Critical unknown fields of a TxBody are rejected; tags with this bit set are non-critical.
_NON_CRITICAL_BIT = 1 << 10
# sdk.ValidateDenom; a decimal coin of a node's minimum-gas-prices setting (LegacyDec: 18 decimals).
_DENOM = re.compile(r"[a-zA-Z][a-zA-Z0-9/:._-]{2,127}")
_DEC_COIN = re.compile(r"([0-9]+(?:\.[0-9]+)?|\.[0-9]+)\s*([a-zA-Z][a-zA-Z0-9/:._-]{2,127})")
_DEC_PRECISION = 18


def sdk_error(code: int, detail: str | None = None) -> EngineError:
    """An ``sdk`` codespace error rendered as ``errorsmod.Wrap`` does: ``"<detail>: <message>"``."""
    message = SDK_MESSAGES[code]
    return EngineError("sdk", code, f"{detail}: {message}" if detail else message)


def parse_min_gas_prices(text: str) -> dict[str, Decimal]:
    """Parse a node's ``minimum-gas-prices`` setting: comma-separated ``<decimal><denom>`` coins.

    As the node parses it: spaces around a coin are allowed, zero prices are dropped, an empty string
    means no minimum.

    Example:
        >>> parse_min_gas_prices("0.025uusdc, 25000000000adv4tnt")
        {'adv4tnt': Decimal('25000000000'), 'uusdc': Decimal('0.025')}

    Raises:
        ValueError: a malformed coin, more than 18 decimal places, or a denom given twice.
    """
    prices: dict[str, Decimal] = {}
    if not text.strip():
        return prices
    for part in text.split(","):
        match = _DEC_COIN.fullmatch(part.strip())
        if match is None:
            raise ValueError(f"invalid decimal coin expression: {part.strip()!r}")
        amount, denom = match.groups()
        fraction = amount.partition(".")[2]
        if len(fraction) > _DEC_PRECISION:
            raise ValueError(
                f"too much precision in {part.strip()!r}: at most {_DEC_PRECISION} decimal places"
            )
        if denom in prices:
            raise ValueError(f"duplicate denomination {denom}")
        prices[denom] = Decimal(amount)
    return {denom: price for denom, price in sorted(prices.items()) if price}


def format_min_gas_prices(prices: Mapping[str, Decimal]) -> str:
    """The ``minimum-gas-prices`` text of ``prices`` (sorted by denom, as the node keeps them)."""
    return ",".join(f"{_plain(price)}{denom}" for denom, price in sorted(prices.items()))


def _plain(value: Decimal) -> str:
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def required_fee(gas_limit: int, prices: Mapping[str, Decimal]) -> dict[str, int]:
    """The fee a node asks of a transaction: ``ceil(gas_limit * price)`` per denom, sorted by denom."""
    required: dict[str, int] = {}
    for denom, price in sorted(prices.items()):
        numerator, denominator = price.as_integer_ratio()  # exact: no Decimal context rounding
        required[denom] = -(-numerator * gas_limit // denominator)
    return required


def tx_size_gas(raw: bytes) -> int:
    """Gas ``ConsumeGasForTxSize`` charges before the fee is checked: 10 per transaction byte."""
    return TX_SIZE_COST_PER_BYTE * len(raw)


def tx_hash(raw: bytes) -> str:
    """The transaction hash: uppercase hex SHA-256 of the broadcast bytes."""
    return hashlib.sha256(raw).hexdigest().upper()


def sign_doc_bytes(body_bytes: bytes, auth_info_bytes: bytes, chain_id: str, account_number: int) -> bytes:
    """Serialized ``SignDoc`` (SIGN_MODE_DIRECT) over the exact body and auth-info bytes."""
    doc = tx_pb2.SignDoc(
        body_bytes=body_bytes,
        auth_info_bytes=auth_info_bytes,
        chain_id=chain_id,
        account_number=account_number,
    )
    return bytes(doc.SerializeToString())


def address_of_pubkey(pub_key: bytes, prefix: str = ADDRESS_PREFIX) -> str:
    """Bech32 address of a compressed secp256k1 key: ``RIPEMD160(SHA256(key))`` under ``prefix``."""
    digest = hashlib.new("ripemd160", hashlib.sha256(pub_key).digest()).digest()
    words = bech32.convertbits(digest, 8, 5)
    assert words is not None  # 8-bit to 5-bit with padding always converts
    return str(bech32.bech32_encode(prefix, words))


def address_bytes(address: str) -> bytes | None:
    """The 20-byte payload of a ``dydx`` bech32 address, or None when it is not one."""
    hrp, data = bech32.bech32_decode(address)
    if hrp != ADDRESS_PREFIX or data is None:
        return None
    payload = bech32.convertbits(data, 5, 8, False)
    if payload is None or len(payload) not in (20, 32):
        return None
    return bytes(payload)


def verify_signature(pub_key: bytes, message: bytes, signature: bytes) -> bool:
    """Cosmos secp256k1 verification: 64-byte ``r||s`` over SHA-256(message), low-S only.

    A high-S signature is malleable and rejected (the chain's secp256k1 key refuses ``s > n/2``);
    libsecp256k1 refuses it as well, the explicit check keeps that independent of the library.
    """
    if len(signature) != 64:
        return False
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:], "big")
    if not (0 < r < SECP256K1_ORDER and 0 < s <= SECP256K1_ORDER // 2):
        return False
    try:
        key = coincurve.PublicKey(pub_key)
        return bool(key.verify(_der(r, s), hashlib.sha256(message).digest(), hasher=None))
    except (ValueError, TypeError):
        return False


def _der(r: int, s: int) -> bytes:
    def integer(value: int) -> bytes:
        body = value.to_bytes((value.bit_length() + 8) // 8, "big")  # keeps a leading 0 for the sign bit
        return b"\x02" + bytes([len(body)]) + body

    content = integer(r) + integer(s)
    return b"\x30" + bytes([len(content)]) + content


# --- decoding ---------------------------------------------------------------------------------------


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("invalid varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _wire_fields(data: bytes) -> Iterator[tuple[int, int]]:
    """Top-level ``(field number, wire type)`` of a protobuf encoding; ValueError when malformed."""
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise ValueError("illegal tag 0")
        if wire_type == 0:
            _, pos = _read_varint(data, pos)
        elif wire_type == 1:
            pos += 8
        elif wire_type == 2:
            length, pos = _read_varint(data, pos)
            pos += length
        elif wire_type == 5:
            pos += 4
        else:
            raise ValueError(f"unsupported wire type {wire_type}")
        if pos > len(data):
            raise ValueError("unexpected EOF")
        yield number, wire_type


def _reject_unknown(data: bytes, descriptor: Any, *, allow_non_critical: bool = False) -> None:
    known = {f.number for f in descriptor.fields}
    for number, wire_type in _wire_fields(data):
        if number in known:
            continue
        if allow_non_critical and number & _NON_CRITICAL_BIT:
            continue
        raise sdk_error(2, f"unknown field: tag {number} of wire type {wire_type} in {descriptor.full_name}")


def _check_adr027(raw: bytes) -> None:
    previous = 0
    for number, wire_type in _wire_fields(raw):
        if wire_type != 2:
            raise sdk_error(2, f"expected 2 wire type, got {wire_type}")
        if number < previous:
            raise sdk_error(2, f"txRaw must follow ADR-027, got tagNum {number} after tagNum {previous}")
        previous = number


@dataclass(frozen=True, slots=True)
class DecodedTx:
    """A decoded transaction with the exact bytes it was signed over.

    Attributes:
        raw: the broadcast bytes (``TxRaw``).
        hash: uppercase hex SHA-256 of ``raw``.
        body_bytes: ``TxRaw.body_bytes``, as signed.
        auth_info_bytes: ``TxRaw.auth_info_bytes``, as signed.
        body: the parsed ``TxBody``.
        auth_info: the parsed ``AuthInfo``.
        signatures: ``TxRaw.signatures``.
        messages: the body's messages, unpacked to their v4_proto classes.
    """

    raw: bytes
    hash: str
    body_bytes: bytes
    auth_info_bytes: bytes
    body: Any
    auth_info: Any
    signatures: tuple[bytes, ...]
    messages: tuple[Any, ...]

    def to_tx(self) -> Any:
        """The transaction as a ``cosmos.tx.v1beta1.Tx`` message (what ``GetTx`` returns)."""
        return tx_pb2.Tx(body=self.body, auth_info=self.auth_info, signatures=list(self.signatures))


def decode_tx(raw: bytes) -> DecodedTx:
    """Decode broadcast bytes as the chain's ``DefaultTxDecoder`` does.

    Raises:
        EngineError: sdk 2 (tx parse error) for anything that is not a well-formed transaction of
            known messages.
    """
    try:
        _check_adr027(raw)
        _reject_unknown(raw, tx_pb2.TxRaw.DESCRIPTOR)
        tx_raw = tx_pb2.TxRaw.FromString(raw)
        _reject_unknown(tx_raw.body_bytes, tx_pb2.TxBody.DESCRIPTOR, allow_non_critical=True)
        body = tx_pb2.TxBody.FromString(tx_raw.body_bytes)
        _reject_unknown(tx_raw.auth_info_bytes, tx_pb2.AuthInfo.DESCRIPTOR)
        auth_info = tx_pb2.AuthInfo.FromString(tx_raw.auth_info_bytes)
    except (DecodeError, ValueError) as exc:
        raise sdk_error(2, str(exc) or "invalid protobuf encoding") from exc
    unpacked = []
    for any_msg in body.messages:
        cls = messages.MESSAGE_TYPES.get(any_msg.type_url)
        if cls is None:
            raise sdk_error(2, f"unable to resolve type URL {any_msg.type_url}")
        try:
            _reject_unknown(any_msg.value, cls.DESCRIPTOR)
            unpacked.append(cls.FromString(any_msg.value))
        except (DecodeError, ValueError) as exc:
            raise sdk_error(2, f"{any_msg.type_url}: {exc or 'invalid protobuf encoding'}") from exc
    for info in auth_info.signer_infos:
        if info.HasField("public_key") and info.public_key.type_url != PUBKEY_TYPE_URL:
            raise sdk_error(2, f"unable to resolve type URL {info.public_key.type_url}")
    return DecodedTx(
        raw=raw,
        hash=tx_hash(raw),
        body_bytes=tx_raw.body_bytes,
        auth_info_bytes=tx_raw.auth_info_bytes,
        body=body,
        auth_info=auth_info,
        signatures=tuple(tx_raw.signatures),
        messages=tuple(unpacked),
    )


# --- timestamp nonces -------------------------------------------------------------------------------


@dataclass(slots=True)
class _NonceState:
    nonces: list[int] = field(default_factory=list)
    max_ejected: int = 0


class TimestampNonces:
    """Per-account timestamp nonces (``x/accountplus``): unix-ms sequences >= 2^40.

    A nonce is accepted when it is within ±30 s of the block time, greater than every nonce already
    forgotten, and not among the (at most 20) nonces remembered; when 20 are remembered it replaces
    the smallest, which it must exceed.
    """

    def __init__(self) -> None:
        self._state: dict[str, _NonceState] = {}

    def remembered(self, address: str) -> tuple[int, ...]:
        """The nonces currently remembered for ``address``."""
        state = self._state.get(address)
        return tuple(state.nonces) if state is not None else ()

    def check(self, address: str, nonce: int, block_time_ms: int) -> _NonceState:
        """The account's nonce state after accepting ``nonce`` (not stored; see :meth:`store`).

        Raises:
            EngineError: sdk 32 when the nonce is outside the window or rejected.
        """
        if (
            not block_time_ms - TIMESTAMP_NONCE_WINDOW_MS
            <= nonce
            <= block_time_ms + TIMESTAMP_NONCE_WINDOW_MS
        ):
            raise sdk_error(32, f"timestamp nonce {nonce} not within valid time window")
        current = self._state.get(address)
        if current is None:
            return _NonceState([nonce])
        oldest = block_time_ms - TIMESTAMP_NONCE_WINDOW_MS
        state = _NonceState(max_ejected=current.max_ejected)
        for kept in current.nonces:
            if kept >= oldest:
                state.nonces.append(kept)
            elif kept > state.max_ejected:
                state.max_ejected = kept
        if nonce <= state.max_ejected or nonce in state.nonces:
            raise sdk_error(32, f"timestamp nonce {nonce} rejected")
        if len(state.nonces) < MAX_TIMESTAMP_NONCES:
            state.nonces.append(nonce)
            return state
        smallest = min(range(len(state.nonces)), key=state.nonces.__getitem__)
        if nonce <= state.nonces[smallest]:
            raise sdk_error(32, f"timestamp nonce {nonce} rejected")
        state.max_ejected = state.nonces[smallest]
        state.nonces[smallest] = nonce
        return state

    def store(self, address: str, state: _NonceState) -> None:
        """Write a state returned by :meth:`check`."""
        self._state[address] = state


# --- the ante handler ------------------------------------------------------------------------------


@dataclass(slots=True)
class AnteOutcome:
    """What a transaction that passed the ante checks writes once its messages succeeded.

    Attributes:
        tx: the decoded transaction.
        signer: the bech32 address that signed it.
        sequence: the signer info's sequence.
        short_term: every message is a short-term clob message (no sequence check or increment).
        timestamp_nonce: the sequence is a timestamp nonce (checked, never incremented).
        has_clob_msg: the transaction went through the clob path (free gas, no fee).
        pub_key: the key to store on the account (first use), or None.
        increment_sequence: the account sequence is incremented.
        fee: fee coins to take from the signer's wallet, by denom.
        gas_wanted: the fee's gas limit.
    """

    tx: DecodedTx
    signer: str
    sequence: int
    short_term: bool
    timestamp_nonce: bool
    has_clob_msg: bool
    pub_key: bytes | None = None
    increment_sequence: bool = False
    fee: dict[str, int] = field(default_factory=dict)
    gas_wanted: int = 0
    nonce_state: _NonceState | None = None


class AnteHandler:
    """The validator's transaction checks against a :class:`ChainEngine` (see the module docstring).

    Args:
        engine: the chain whose accounts (number, sequence, public key, balances) are checked.
        chain_id: the chain id signatures must commit to.
        min_gas_prices: the node's minimum gas prices, per unit of gas by denom (see
            :func:`parse_min_gas_prices`); None for the venue's defaults
            (:data:`DEFAULT_MIN_GAS_PRICES`), empty for no minimum.
    """

    def __init__(
        self,
        engine: ChainEngine,
        *,
        chain_id: str,
        min_gas_prices: Mapping[str, Decimal] | None = None,
    ) -> None:
        self.engine = engine
        self.chain_id = chain_id
        self.nonces = TimestampNonces()
        prices = parse_min_gas_prices(DEFAULT_MIN_GAS_PRICES) if min_gas_prices is None else min_gas_prices
        for denom, price in prices.items():
            if not price.is_finite() or price < 0:
                raise ValueError(f"minimum gas price of {denom} must be a finite number >= 0; got {price}")
        self.min_gas_prices: dict[str, Decimal] = {d: p for d, p in sorted(prices.items()) if p}

    def run(
        self,
        tx: DecodedTx,
        *,
        simulate: bool = False,
        force_sequence_mismatch: Callable[[], bool] | None = None,
    ) -> AnteOutcome:
        """Check ``tx`` in the chain's order; nothing is written (see :meth:`commit`).

        Args:
            tx: the decoded transaction.
            simulate: ``Simulate`` semantics: no signature verification, the public key may be omitted.
            force_sequence_mismatch: a fault hook, called when a stateful transaction reaches the
                sequence check; when it answers True the check fails with sdk 32 whatever the
                sequence (the account's sequence is left as it is).

        Raises:
            EngineError: the rejection, with the chain's codespace, code and raw log.
        """
        msgs = tx.messages
        if not msgs:
            raise sdk_error(18, "must contain at least one message")
        for msg in msgs:
            messages.validate_basic(msg)

        fee_msg = tx.auth_info.fee if tx.auth_info.HasField("fee") else None
        if fee_msg is None:
            raise EngineError("undefined", 1, "missing fee")
        gas_limit = int(fee_msg.gas_limit)
        if gas_limit > MAX_GAS_WANTED:
            raise sdk_error(18, f"invalid gas supplied; {gas_limit} > {MAX_GAS_WANTED}")
        fee = _fee_coins(fee_msg.amount)
        signers = messages.signers(msgs)
        if not tx.signatures and not simulate:
            raise sdk_error(15)
        if len(tx.signatures) != len(signers) and not simulate:
            raise sdk_error(4, f"wrong number of signers; expected {len(signers)}, got {len(tx.signatures)}")
        infos = tx.auth_info.signer_infos
        if len(infos) != len(signers):
            raise sdk_error(4, f"invalid number of signer;  expected: {len(signers)}, got {len(infos)}")

        timeout = tx.body.timeout_height
        block_height = self.engine.height + 1
        if timeout and block_height > timeout:
            raise sdk_error(30, f"block height: {block_height}, timeout height: {timeout}")
        if len(tx.body.memo) > MAX_MEMO_CHARACTERS:
            raise sdk_error(
                12,
                f"maximum number of characters is {MAX_MEMO_CHARACTERS} but received "
                f"{len(tx.body.memo)} characters",
            )
        if len(signers) > 1:
            # The emulator's accounts sign alone; no message it serves has two signers.
            raise sdk_error(4, f"expected exactly one signer, got {len(signers)}")
        signer = signers[0]
        info = infos[0]
        sequence = int(info.sequence)
        has_clob = any(messages.is_clob(m) for m in msgs)
        short_term = messages.skips_sequence(msgs)
        is_ts_nonce = sequence >= TIMESTAMP_NONCE_CUTOFF
        outcome = AnteOutcome(
            tx=tx,
            signer=signer,
            sequence=sequence,
            short_term=short_term,
            timestamp_nonce=is_ts_nonce,
            has_clob_msg=has_clob,
            gas_wanted=gas_limit,
        )
        if not has_clob:
            # The chain's DeductFeeDecorator, after ConsumeGasForTxSize; clob transactions skip both.
            if not simulate:
                self._check_gas(tx, gas_limit)
                self._check_min_gas_prices(fee, gas_limit)
            outcome.fee = self._check_fee(signer, fee)

        # Replay protection (skipped when every message is protected by its GoodTilBlock).
        if not short_term:
            account = self._signer_account(signer)
            if force_sequence_mismatch is not None and force_sequence_mismatch():
                if is_ts_nonce:
                    raise sdk_error(32, f"timestamp nonce {sequence} rejected")
                expected = account.sequence + 1 if sequence == account.sequence else account.sequence
                raise sdk_error(32, f"account sequence mismatch, expected {expected}, got {sequence}")
            if is_ts_nonce:
                block_ms = int(self.engine.block_time.timestamp() * 1000)
                outcome.nonce_state = self.nonces.check(signer, sequence, block_ms)
            elif sequence != account.sequence:
                raise sdk_error(32, f"account sequence mismatch, expected {account.sequence}, got {sequence}")

        # Public key: must be the signer's, stored on first use.
        tx_key: bytes | None = None
        if info.HasField("public_key"):
            tx_key = _pubkey_from_any(info.public_key)
            if not simulate and address_bytes(address_of_pubkey(tx_key)) != address_bytes(signer):
                raise sdk_error(8, f"pubKey does not match signer address {signer} with signer index: 0")
        account = self._signer_account(signer)
        key = account.pub_key
        if key is None and tx_key is not None:
            outcome.pub_key = tx_key
            key = tx_key

        # Signature.
        if not simulate:
            if key is None:
                raise sdk_error(8, "pubkey on account is not set")
            reason = _mode_problem(info)
            if reason is None:
                doc = sign_doc_bytes(tx.body_bytes, tx.auth_info_bytes, self.chain_id, account.account_number)
                if not verify_signature(key, doc, tx.signatures[0]):
                    reason = "unable to verify single signer signature"
            if reason is not None:
                raise sdk_error(
                    4,
                    f"signature verification failed; please verify account number "
                    f"({account.account_number}) and chain-id ({self.chain_id}): ({reason})",
                )

        if short_term and len(msgs) > 1:
            raise sdk_error(
                18,
                "a transaction containing short term MsgCancelOrder or MsgPlaceOrder may not contain "
                "more than one message",
            )
        outcome.increment_sequence = not short_term and not is_ts_nonce
        if has_clob:
            messages.validate_clob_tx(msgs, int(tx.body.timeout_height))
        return outcome

    def commit(self, outcome: AnteOutcome) -> None:
        """Write the ante effects of a transaction whose messages succeeded."""
        account = self.engine.ensure_account(outcome.signer)
        if outcome.pub_key is not None and account.pub_key is None:
            self.engine.set_pub_key(outcome.signer, outcome.pub_key)
        if outcome.nonce_state is not None:
            self.nonces.store(outcome.signer, outcome.nonce_state)
        if outcome.increment_sequence:
            self.engine.increment_sequence(outcome.signer)
        for denom, amount in outcome.fee.items():
            account.balances[denom] = account.balances.get(denom, 0) - amount
            if denom == USDC_DENOM:
                # Fees go to the fee collector, which keeps the USDC supply whole.
                self.engine.fee_collector_quantums += amount

    def _signer_account(self, signer: str) -> Account:
        account = self.engine.account(signer)
        if account is None:
            raise sdk_error(9, f"account {signer} does not exist")
        return account

    def _check_gas(self, tx: DecodedTx, gas_limit: int) -> None:
        """Out of gas where the chain surely is: the gas meter holds ``gas_limit`` and the transaction
        size alone costs more. The chain meters store reads as well (and so may run out earlier, at a
        read); the emulator does not, so it reports the size cost only."""
        size_gas = tx_size_gas(tx.raw)
        if gas_limit < size_gas:
            raise sdk_error(
                11, f"out of gas in location: txSize; gasWanted: {gas_limit}, gasUsed: {size_gas}"
            )

    def _check_min_gas_prices(self, fee: Sequence[tuple[str, int]], gas_limit: int) -> None:
        """CheckTx's fee floor: some fee coin reaches ``ceil(gas_limit * price)`` of its denom."""
        if not self.min_gas_prices:
            return
        required = required_fee(gas_limit, self.min_gas_prices)
        if not any(required.get(denom, 0) and amount >= required[denom] for denom, amount in fee):
            raise sdk_error(
                13, f"insufficient fees; got: {_coins_text(fee)} required: {_coins_text(required.items())}"
            )

    def _check_fee(self, signer: str, fee: Sequence[tuple[str, int]]) -> dict[str, int]:
        """The fee payer (the signer) exists, the coins are valid and its wallet holds them; the
        coins to charge."""
        account = self.engine.account(signer)
        if account is None:
            raise sdk_error(9, f"fee payer address: {signer} does not exist")
        if all(amount == 0 for _, amount in fee):
            return {}
        denoms = [denom for denom, _ in fee]
        if (
            any(amount <= 0 for _, amount in fee)
            or any(_DENOM.fullmatch(denom) is None for denom in denoms)
            or any(a >= b for a, b in itertools.pairwise(denoms))
        ):
            raise sdk_error(13, f"invalid fee amount: {_coins_text(fee)}")
        for denom, amount in fee:
            balance = account.balances.get(denom, 0)
            if balance < amount:
                raise sdk_error(
                    5,
                    f"spendable balance {balance}{denom} is smaller than {amount}{denom}: insufficient funds",
                )
        return dict(fee)


def _coins_text(coins: Iterable[tuple[str, int]]) -> str:
    """``sdk.Coins.String``: ``<amount><denom>`` joined by commas, in the given order."""
    return ",".join(f"{amount}{denom}" for denom, amount in coins)


def _fee_coins(coins: Sequence[Any]) -> list[tuple[str, int]]:
    """``Fee.amount`` as ``(denom, amount)`` in the transaction's order (zero amounts kept)."""
    fee: list[tuple[str, int]] = []
    for coin in coins:
        try:
            amount = int(coin.amount)
        except ValueError as exc:
            raise sdk_error(2, f"invalid coin amount {coin.amount!r}") from exc
        fee.append((coin.denom, amount))
    if any(amount < 0 for _, amount in fee):
        raise sdk_error(13, f"invalid fee provided: {_coins_text(fee)}")
    return fee


def _pubkey_from_any(any_key: Any) -> bytes:
    try:
        key: bytes = bytes(keys_pb2.PubKey.FromString(any_key.value).key)
    except DecodeError as exc:
        raise sdk_error(2, f"invalid public key encoding: {exc}") from exc
    if len(key) != 33:
        raise sdk_error(8, f"length of pubkey is incorrect: {len(key)}")
    try:
        coincurve.PublicKey(key)
    except ValueError as exc:
        raise sdk_error(8, "public key is not on the secp256k1 curve") from exc
    return key


def _mode_problem(info: Any) -> str | None:
    mode_info = info.mode_info
    if mode_info.WhichOneof("sum") != "single":
        return "expected a single signer (SIGN_MODE_DIRECT) mode info"
    mode = mode_info.single.mode
    if mode != signing_pb2.SIGN_MODE_DIRECT:
        return f"unsupported sign mode {signing_pb2.SignMode.Name(mode) if mode in signing_pb2.SignMode.values() else mode}"
    return None
