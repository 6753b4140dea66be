"""A small, independent test signer for the emulated validator.

It derives keys from a BIP-39 mnemonic (bip_utils), builds ``TxBody`` / ``AuthInfo`` / ``SignDoc``
with v4_proto and signs with coincurve (RFC 6979, low-S). It shares nothing with the client package
nor with the emulator's verifier, so a bug in either shows up as a failed test.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import bech32
import coincurve
from bip_utils import Bip32Slip10Secp256k1, Bip39SeedGenerator
from google.protobuf import any_pb2
from v4_proto.cosmos.base.v1beta1 import coin_pb2
from v4_proto.cosmos.crypto.secp256k1 import keys_pb2
from v4_proto.cosmos.tx.signing.v1beta1 import signing_pb2
from v4_proto.cosmos.tx.v1beta1 import tx_pb2
from v4_proto.dydxprotocol.clob import order_pb2
from v4_proto.dydxprotocol.clob import tx_pb2 as clob_tx
from v4_proto.dydxprotocol.sending import transfer_pb2
from v4_proto.dydxprotocol.sending import tx_pb2 as sending_tx
from v4_proto.dydxprotocol.subaccounts import subaccount_pb2

from nautilus_dydx.emulator.engine.chain import ChainEngine
from nautilus_dydx.emulator.params import NATIVE_DENOM, USDC_DENOM
from nautilus_dydx.emulator.validator import TxFaults, TxServicer

N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

MNEMONIC_1 = (
    "mandate glove carry despair area gloom sting round toddler deal face vague receive shallow "
    "confirm south green cup rain drill monkey method tongue fence"
)
MNEMONIC_2 = (
    "mirror actor skill push coach wait confirm orchard lunch mobile athlete gossip awake miracle "
    "matter bus reopen team ladder lazy list timber render wait"
)
MNEMONIC_3 = (
    "movie yard still copper exile wear brisk chest ride dizzy novel future menu finish radar lunar "
    "claim hub middle force turtle mouse frequent embark"
)


@dataclass(frozen=True)
class Key:
    """A secp256k1 key pair and its dydx address."""

    private: bytes
    public: bytes
    address: str

    @classmethod
    def from_mnemonic(cls, mnemonic: str) -> Key:
        seed = Bip39SeedGenerator(mnemonic).Generate()
        node = Bip32Slip10Secp256k1.FromSeedAndPath(seed, "m/44'/118'/0'/0/0")
        return cls.from_private(node.PrivateKey().Raw().ToBytes())

    @classmethod
    def from_private(cls, private: bytes) -> Key:
        public = coincurve.PrivateKey(private).public_key.format(compressed=True)
        digest = hashlib.new("ripemd160", hashlib.sha256(public).digest()).digest()
        address = bech32.bech32_encode("dydx", bech32.convertbits(digest, 8, 5))
        return cls(private, public, address)

    def sign(self, message: bytes) -> bytes:
        """64-byte ``r||s`` (low-S) over SHA-256(message)."""
        digest = hashlib.sha256(message).digest()
        return coincurve.PrivateKey(self.private).sign_recoverable(digest, hasher=None)[:64]


def high_s(signature: bytes) -> bytes:
    """The same signature with ``s`` replaced by ``n - s`` (valid ECDSA, but malleable)."""
    s = int.from_bytes(signature[32:], "big")
    return signature[:32] + (N - s).to_bytes(32, "big")


def pack(message: Any) -> Any:
    return any_pb2.Any(type_url="/" + message.DESCRIPTOR.full_name, value=message.SerializeToString())


def subaccount(owner: str, number: int = 0) -> Any:
    return subaccount_pb2.SubaccountId(owner=owner, number=number)


def order_id(owner: str, client_id: int, *, number: int = 0, flags: int = 0, clob: int = 0) -> Any:
    return order_pb2.OrderId(
        subaccount_id=subaccount(owner, number), client_id=client_id, order_flags=flags, clob_pair_id=clob
    )


def place(
    owner: str,
    client_id: int,
    *,
    side: int = 1,
    quantums: int = 1_000_000,
    subticks: int = 5_000_000_000,
    gtb: int | None = None,
    gtbt: int | None = None,
    tif: int = 0,
    reduce_only: bool = False,
    client_metadata: int = 0,
    flags: int = 0,
    clob: int = 0,
    number: int = 0,
    condition_type: int = 0,
    trigger: int = 0,
) -> Any:
    """A ``MsgPlaceOrder`` (defaults: BTC-USD buy of 0.0001 BTC at 50 000)."""
    order = order_pb2.Order(
        order_id=order_id(owner, client_id, number=number, flags=flags, clob=clob),
        side=side,
        quantums=quantums,
        subticks=subticks,
        time_in_force=tif,
        reduce_only=reduce_only,
        client_metadata=client_metadata,
        condition_type=condition_type,
        conditional_order_trigger_subticks=trigger,
    )
    if gtb is not None:
        order.good_til_block = gtb
    if gtbt is not None:
        order.good_til_block_time = gtbt
    return clob_tx.MsgPlaceOrder(order=order)


def cancel(
    owner: str,
    client_id: int,
    *,
    gtb: int | None = None,
    gtbt: int | None = None,
    flags: int = 0,
    clob: int = 0,
) -> Any:
    msg = clob_tx.MsgCancelOrder(order_id=order_id(owner, client_id, flags=flags, clob=clob))
    if gtb is not None:
        msg.good_til_block = gtb
    if gtbt is not None:
        msg.good_til_block_time = gtbt
    return msg


def batch_cancel(owner: str, batches: Sequence[tuple[int, Sequence[int]]], gtb: int) -> Any:
    return clob_tx.MsgBatchCancel(
        subaccount_id=subaccount(owner),
        short_term_cancels=[clob_tx.OrderBatch(clob_pair_id=c, client_ids=list(ids)) for c, ids in batches],
        good_til_block=gtb,
    )


def deposit(owner: str, quantums: int, number: int = 0) -> Any:
    return transfer_pb2.MsgDepositToSubaccount(
        sender=owner, recipient=subaccount(owner, number), asset_id=0, quantums=quantums
    )


def withdraw(owner: str, quantums: int, number: int = 0) -> Any:
    return transfer_pb2.MsgWithdrawFromSubaccount(
        sender=subaccount(owner, number), recipient=owner, asset_id=0, quantums=quantums
    )


def transfer(owner: str, to: str, amount: int, *, number: int = 0, to_number: int = 0) -> Any:
    from v4_proto.dydxprotocol.sending import transfer_pb2 as t

    return sending_tx.MsgCreateTransfer(
        transfer=t.Transfer(
            sender=subaccount(owner, number), recipient=subaccount(to, to_number), asset_id=0, amount=amount
        )
    )


@dataclass(frozen=True)
class SignedTx:
    """A signed transaction and its parts."""

    raw: bytes
    body_bytes: bytes
    auth_info_bytes: bytes
    sign_doc: bytes
    signature: bytes
    hash: str


def body_bytes(msgs: Sequence[Any], *, memo: str = "", timeout_height: int = 0) -> bytes:
    return tx_pb2.TxBody(
        messages=[pack(m) for m in msgs], memo=memo, timeout_height=timeout_height
    ).SerializeToString()


def auth_info_bytes(
    public: bytes | None,
    sequence: int,
    *,
    gas_limit: int = 1_000_000,
    fee: Sequence[tuple[str, int]] = (),
    mode: int = signing_pb2.SIGN_MODE_DIRECT,
) -> bytes:
    info = tx_pb2.SignerInfo(
        mode_info=tx_pb2.ModeInfo(single=tx_pb2.ModeInfo.Single(mode=mode)), sequence=sequence
    )
    if public is not None:
        info.public_key.CopyFrom(pack(keys_pb2.PubKey(key=public)))
    return tx_pb2.AuthInfo(
        signer_infos=[info],
        fee=tx_pb2.Fee(amount=[coin_pb2.Coin(denom=d, amount=str(a)) for d, a in fee], gas_limit=gas_limit),
    ).SerializeToString()


def assemble(body: bytes, auth: bytes, signatures: Sequence[bytes]) -> bytes:
    return tx_pb2.TxRaw(
        body_bytes=body, auth_info_bytes=auth, signatures=list(signatures)
    ).SerializeToString()


def sign_tx(
    key: Key,
    msgs: Sequence[Any],
    *,
    sequence: int = 0,
    account_number: int = 0,
    chain_id: str = "dydx-testnet-4",
    memo: str = "",
    timeout_height: int = 0,
    gas_limit: int = 1_000_000,
    fee: Sequence[tuple[str, int]] = (),
    include_pubkey: bool = True,
    mode: int = signing_pb2.SIGN_MODE_DIRECT,
) -> SignedTx:
    """Build and sign a SIGN_MODE_DIRECT transaction."""
    body = body_bytes(msgs, memo=memo, timeout_height=timeout_height)
    auth = auth_info_bytes(
        key.public if include_pubkey else None, sequence, gas_limit=gas_limit, fee=fee, mode=mode
    )
    doc = tx_pb2.SignDoc(
        body_bytes=body, auth_info_bytes=auth, chain_id=chain_id, account_number=account_number
    ).SerializeToString()
    signature = key.sign(doc)
    raw = assemble(body, auth, [signature])
    return SignedTx(raw, body, auth, doc, signature, hashlib.sha256(raw).hexdigest().upper())


# --- a chain + servicer harness -----------------------------------------------------------------------

T0 = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)
CHAIN_ID = "dydx-testnet-4"
START_HEIGHT = 1_000_000
USDC = 1_000_000  # quantums per USDC
LONG_TERM = 64  # the order flag of a long-term order on the wire
# What a node with the venue's default minimum gas prices (0.025 micro-USDC or 25e9 adv4tnt per gas)
# asks of a transaction without clob messages at sign_tx's default gas limit of 1 000 000.
USDC_FEE = [(USDC_DENOM, 25_000)]
NATIVE_FEE = [(NATIVE_DENOM, 25_000_000_000 * 1_000_000)]


class Harness:
    """A started engine (BTC-USD, ETH-USD; height 1 000 000 at T0) and a TxServicer on it."""

    def __init__(
        self,
        *,
        chain_id: str = CHAIN_ID,
        faults: TxFaults | None = None,
        min_gas_prices: Mapping[str, Decimal] | None = None,
        **engine: Any,
    ) -> None:
        engine.setdefault("markets", ["BTC-USD", "ETH-USD"])
        engine.setdefault("start_height", START_HEIGHT)
        engine.setdefault("start_time", T0)
        self.engine = ChainEngine(**engine)
        self.engine.start()
        self.servicer = TxServicer(
            self.engine, chain_id=chain_id, faults=faults, min_gas_prices=min_gas_prices
        )
        self.chain_id = chain_id

    @classmethod
    def with_funds(cls, key: Key, usdc: int = 1_000, *, account_number: int | None = None) -> Harness:
        """A new harness on which ``key`` holds ``usdc`` USDC (see ``fund``)."""
        harness = cls()
        harness.fund(key, usdc, account_number=account_number)
        return harness

    @property
    def height(self) -> int:
        return self.engine.height

    def fund(self, key: Key, usdc: int = 1_000, *, account_number: int | None = None) -> None:
        """Mint ``usdc`` USDC into subaccount 0 of ``key`` (creating its account)."""
        self.engine.deposit(key.address, 0, usdc * USDC)
        if account_number is not None:
            account = self.engine.account(key.address)
            assert account is not None
            account.account_number = account_number

    def fund_gas(self, key: Key, txs: int = 20) -> None:
        """Mint enough of the native token into the wallet of ``key`` to pay ``NATIVE_FEE`` ``txs`` times
        (fees in the native denom leave the USDC balances that tests check alone)."""
        self.engine.fund_wallet(key.address, NATIVE_DENOM, txs * NATIVE_FEE[0][1])

    def sequence(self, key: Key) -> int:
        account = self.engine.account(key.address)
        assert account is not None
        return account.sequence

    def sign(self, key: Key, msgs: Sequence[Any], **kwargs: Any) -> SignedTx:
        account = self.engine.account(key.address)
        kwargs.setdefault("sequence", account.sequence if account is not None else 0)
        kwargs.setdefault("account_number", account.account_number if account is not None else 0)
        kwargs.setdefault("chain_id", self.chain_id)
        return sign_tx(key, msgs, **kwargs)

    def send(self, key: Key, *msgs: Any, **kwargs: Any) -> Any:
        """Sign ``msgs`` with the account's current sequence / number and broadcast; the TxResponse."""
        return self.servicer.broadcast(self.sign(key, msgs, **kwargs).raw)

    def gtbt(self, seconds: int = 3600) -> int:
        return int(self.engine.block_time.timestamp()) + seconds
