"""Signed transactions against the emulated validator: the known-answer tx, signatures, keys, decoding."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from tests.emulator import txutil as tu
from tests.emulator.txutil import Harness, Key
from v4_proto.cosmos.tx.signing.v1beta1 import signing_pb2
from v4_proto.cosmos.tx.v1beta1 import tx_pb2

KAT = {
    "body_bytes": "0a6c0a202f6479647870726f746f636f6c2e636c6f622e4d7367506c6163654f7264657212480a460a340a2d0a2b"
    "6479647831776c646e79746b65727a73333972733238646a6e30703976767165723278326b357838686a791540e201"
    "00100118c0843d2080e497d01228d4843d",
    "auth_info_bytes": "0a4e0a460a1f2f636f736d6f732e63727970746f2e736563703235366b312e5075624b657912230a210291d1d9"
    "fd23334f3d53c3a5b50b56317d8964692320d73d22d7a0b115d5eb574f12040a020801120410c0843d",
    "sign_doc_sha256": "19f19bc969fba53284511563152e49b778e14fde368a0a945e5323cb55d8e4f8",
    "signature": "d6ad92be4266e100100b4eb006f3133f550be21768bf486457ea51f53420190d5f9ffb43d6cd2ec404e273c3bc9c"
    "17bb29c55edb9c9a3a4e33e327ae5dcd02d9",
    "txhash": "4A3D9C86A823EF9E8E4802F5C1CC91F0CC16068A13E9C61E48FA8B9BAA25D552",
}
KAT_ACCOUNT_NUMBER = 12345
SIG_FAIL = (
    "signature verification failed; please verify account number (12345) and chain-id (dydx-testnet-4): "
    "(unable to verify single signer signature): unauthorized"
)


@pytest.fixture
def key() -> Key:
    return Key.from_mnemonic(tu.MNEMONIC_1)


@pytest.fixture
def chain(key: Key) -> Harness:
    return Harness.with_funds(key, account_number=KAT_ACCOUNT_NUMBER)


def kat_tx(key: Key, **kwargs: object) -> tu.SignedTx:
    msg = tu.place(key.address, 123456, side=1, quantums=1_000_000, subticks=5_000_000_000, gtb=1_000_020)
    return tu.sign_tx(key, [msg], sequence=0, account_number=KAT_ACCOUNT_NUMBER, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("mnemonic", "private", "public", "address"),
    [
        (
            tu.MNEMONIC_1,
            "0a7ff605269ed00853a425beda719da038a11792f6dddf31c087b2988b4dc8fe",
            "0291d1d9fd23334f3d53c3a5b50b56317d8964692320d73d22d7a0b115d5eb574f",
            "dydx1wldnytkerzs39rs28djn0p9vvqer2x2k5x8hjy",
        ),
        (
            tu.MNEMONIC_2,
            "e92a6595c934c991d3b3e987ea9b3125bf61a076deab3a9cb519787b7b3e8d77",
            "03f0be763f781b5b59ebc37d721beda913148a539425baa720b97d4820f652ed75",
            "dydx14zzueazeh0hj67cghhf9jypslcf9sh2n5k6art",
        ),
        (
            tu.MNEMONIC_3,
            "d84cc2fce4fd24a4ffaa7d5a5ce4ddbb41a6b66adaa5c9d9a65f663f397d8b81",
            "02c6c895029281b357b05b1699d6fd8244622779c85ade50fe0691b78f94f18fd6",
            "dydx18sukah44zfkjndlhcdmhkjnarl2sevhwf894vh",
        ),
    ],
)
def test_test_signer_key_vectors(mnemonic: str, private: str, public: str, address: str) -> None:
    key = Key.from_mnemonic(mnemonic)
    assert (key.private.hex(), key.public.hex(), key.address) == (private, public, address)
    from nautilus_dydx.emulator.validator.tx import address_of_pubkey

    assert address_of_pubkey(key.public) == address


def test_known_answer_tx_reproduces_and_is_accepted(chain: Harness, key: Key) -> None:
    signed = kat_tx(key)
    assert signed.body_bytes.hex() == KAT["body_bytes"]
    assert signed.auth_info_bytes.hex() == KAT["auth_info_bytes"]
    assert hashlib.sha256(signed.sign_doc).hexdigest() == KAT["sign_doc_sha256"]
    assert signed.signature.hex() == KAT["signature"]
    assert signed.hash == KAT["txhash"]

    response = chain.servicer.broadcast(signed.raw)
    assert (response.code, response.codespace, response.raw_log) == (0, "", "")
    assert response.txhash == KAT["txhash"]
    assert response.height == 0
    account = chain.engine.account(key.address)
    assert account is not None
    assert account.pub_key == key.public
    assert account.sequence == 0  # short-term: not incremented
    assert [o.key.client_id for o in chain.engine.open_orders(tu_ref(key))] == [123456]


def tu_ref(key: Key) -> object:
    from nautilus_dydx.emulator.events import SubaccountRef

    return SubaccountRef(key.address, 0)


def test_known_answer_tx_is_the_tx_message_serialization(key: Key) -> None:
    signed = kat_tx(key)
    tx = tx_pb2.Tx(
        body=tx_pb2.TxBody.FromString(signed.body_bytes),
        auth_info=tx_pb2.AuthInfo.FromString(signed.auth_info_bytes),
        signatures=[signed.signature],
    )
    assert tx.SerializeToString() == signed.raw


def test_one_changed_byte_fails_signature(chain: Harness, key: Key) -> None:
    signed = kat_tx(key)
    body = bytearray(signed.body_bytes)
    index = bytes(body).index(bytes.fromhex("1540e20100")) + 1  # the fixed32 client id 123456
    body[index] ^= 0x01
    raw = tu.assemble(bytes(body), signed.auth_info_bytes, [signed.signature])
    response = chain.servicer.broadcast(raw)
    assert (response.codespace, response.code, response.raw_log) == ("sdk", 4, SIG_FAIL)
    assert chain.engine.open_orders(tu_ref(key)) == []  # type: ignore[arg-type]
    account = chain.engine.account(key.address)
    assert account is not None
    assert account.pub_key is None


def test_changed_signature_byte_fails(chain: Harness, key: Key) -> None:
    signed = kat_tx(key)
    signature = bytearray(signed.signature)
    signature[10] ^= 0x80
    response = chain.servicer.broadcast(
        tu.assemble(signed.body_bytes, signed.auth_info_bytes, [bytes(signature)])
    )
    assert (response.codespace, response.code, response.raw_log) == ("sdk", 4, SIG_FAIL)


def test_high_s_signature_is_rejected(chain: Harness, key: Key) -> None:
    signed = kat_tx(key)
    malleable = tu.high_s(signed.signature)
    assert malleable != signed.signature
    raw = tu.assemble(signed.body_bytes, signed.auth_info_bytes, [malleable])
    response = chain.servicer.broadcast(raw)
    assert (response.codespace, response.code, response.raw_log) == ("sdk", 4, SIG_FAIL)
    # the low-S original is fine
    assert chain.servicer.broadcast(signed.raw).code == 0


def test_wrong_chain_id_is_rejected(chain: Harness, key: Key) -> None:
    response = chain.servicer.broadcast(kat_tx(key, chain_id="dydx-mainnet-1").raw)
    assert (response.codespace, response.code, response.raw_log) == ("sdk", 4, SIG_FAIL)


def test_wrong_account_number_is_rejected(chain: Harness, key: Key) -> None:
    msg = tu.place(key.address, 123456, gtb=1_000_020)
    signed = tu.sign_tx(key, [msg], account_number=KAT_ACCOUNT_NUMBER + 1)
    response = chain.servicer.broadcast(signed.raw)
    assert (response.codespace, response.code, response.raw_log) == ("sdk", 4, SIG_FAIL)


def test_servicer_chain_id_is_the_one_in_the_message() -> None:
    key = Key.from_mnemonic(tu.MNEMONIC_2)
    chain = Harness(chain_id="localdydxprotocol")
    chain.fund(key)
    account = chain.engine.account(key.address)
    assert account is not None
    bad = chain.send(key, tu.place(key.address, 1, gtb=chain.height + 5), chain_id="dydx-testnet-4")
    assert bad.code == 4
    assert bad.raw_log == (
        f"signature verification failed; please verify account number ({account.account_number}) and "
        "chain-id (localdydxprotocol): (unable to verify single signer signature): unauthorized"
    )
    assert chain.send(key, tu.place(key.address, 1, gtb=chain.height + 5)).code == 0


def test_unsupported_sign_mode_is_unauthorized(chain: Harness, key: Key) -> None:
    response = chain.servicer.broadcast(kat_tx(key, mode=signing_pb2.SIGN_MODE_LEGACY_AMINO_JSON).raw)
    assert (response.codespace, response.code) == ("sdk", 4)
    assert "unsupported sign mode SIGN_MODE_LEGACY_AMINO_JSON" in response.raw_log


def test_pubkey_of_another_key_is_invalid_pubkey(chain: Harness, key: Key) -> None:
    other = Key.from_mnemonic(tu.MNEMONIC_2)
    msg = tu.place(key.address, 1, gtb=chain.height + 5)
    body = tu.body_bytes([msg])
    auth = tu.auth_info_bytes(other.public, 0)
    doc = tx_pb2.SignDoc(
        body_bytes=body, auth_info_bytes=auth, chain_id=tu.CHAIN_ID, account_number=KAT_ACCOUNT_NUMBER
    ).SerializeToString()
    response = chain.servicer.broadcast(tu.assemble(body, auth, [other.sign(doc)]))
    assert (response.codespace, response.code, response.raw_log) == (
        "sdk",
        8,
        f"pubKey does not match signer address {key.address} with signer index: 0: invalid pubkey",
    )


def test_pubkey_is_needed_on_first_use_only(chain: Harness, key: Key) -> None:
    first = chain.send(key, tu.place(key.address, 1, gtb=chain.height + 5), include_pubkey=False)
    assert (first.codespace, first.code, first.raw_log) == (
        "sdk",
        8,
        "pubkey on account is not set: invalid pubkey",
    )
    assert chain.send(key, tu.place(key.address, 1, gtb=chain.height + 5)).code == 0
    later = chain.send(key, tu.place(key.address, 2, gtb=chain.height + 5), include_pubkey=False)
    assert later.code == 0


def test_unknown_account_is_unknown_address(key: Key) -> None:
    chain = Harness()
    short = chain.send(key, tu.place(key.address, 1, gtb=chain.height + 5))
    assert (short.codespace, short.code, short.raw_log) == (
        "sdk",
        9,
        f"account {key.address} does not exist: unknown address",
    )
    stateful = chain.send(key, tu.place(key.address, 1, flags=64, gtbt=chain.gtbt()))
    assert (stateful.codespace, stateful.code) == ("sdk", 9)


@pytest.mark.parametrize(
    "raw",
    [b"\xff\xff\xff", b"not a transaction", bytes.fromhex("1a0161") + bytes.fromhex("0a00")],
    ids=["garbage", "text", "out-of-order"],
)
def test_undecodable_bytes_are_tx_parse_errors(chain: Harness, raw: bytes) -> None:
    response = chain.servicer.broadcast(raw)
    assert (response.codespace, response.code) == ("sdk", 2)
    assert response.raw_log.endswith(": tx parse error")
    assert response.txhash == hashlib.sha256(raw).hexdigest().upper()


def test_unknown_message_type_is_a_parse_error(chain: Harness, key: Key) -> None:
    from google.protobuf import any_pb2

    body = tx_pb2.TxBody(
        messages=[any_pb2.Any(type_url="/cosmos.bank.v1beta1.MsgSend", value=b"")]
    ).SerializeToString()
    auth = tu.auth_info_bytes(key.public, 0)
    response = chain.servicer.broadcast(tu.assemble(body, auth, [b"\x00" * 64]))
    assert (response.codespace, response.code, response.raw_log) == (
        "sdk",
        2,
        "unable to resolve type URL /cosmos.bank.v1beta1.MsgSend: tx parse error",
    )


def test_critical_unknown_body_field_is_rejected_non_critical_allowed(chain: Harness, key: Key) -> None:
    msg = tu.place(key.address, 1, gtb=chain.height + 5)
    auth = tu.auth_info_bytes(key.public, 0)

    def signed_with(extra: bytes) -> bytes:
        body = tu.body_bytes([msg]) + extra
        doc = tx_pb2.SignDoc(
            body_bytes=body, auth_info_bytes=auth, chain_id=tu.CHAIN_ID, account_number=KAT_ACCOUNT_NUMBER
        ).SerializeToString()
        return tu.assemble(body, auth, [key.sign(doc)])

    critical = chain.servicer.broadcast(signed_with(bytes.fromhex("2001")))  # field 4, varint
    assert (critical.codespace, critical.code) == ("sdk", 2)
    non_critical = chain.servicer.broadcast(signed_with(bytes.fromhex("884001")))  # field 1025, varint
    assert non_critical.code == 0


def test_no_signature_and_too_many_signatures(chain: Harness, key: Key) -> None:
    signed = kat_tx(key)
    none = chain.servicer.broadcast(tu.assemble(signed.body_bytes, signed.auth_info_bytes, []))
    assert (none.codespace, none.code, none.raw_log) == ("sdk", 15, "no signatures supplied")
    two = chain.servicer.broadcast(
        tu.assemble(signed.body_bytes, signed.auth_info_bytes, [signed.signature, signed.signature])
    )
    assert (two.codespace, two.code, two.raw_log) == (
        "sdk",
        4,
        "wrong number of signers; expected 1, got 2: unauthorized",
    )


def test_empty_body_is_invalid_request(chain: Harness, key: Key) -> None:
    response = chain.servicer.broadcast(tu.sign_tx(key, [], account_number=KAT_ACCOUNT_NUMBER).raw)
    assert (response.codespace, response.code, response.raw_log) == (
        "sdk",
        18,
        "must contain at least one message: invalid request",
    )


def test_memo_too_large_and_timeout_height(chain: Harness, key: Key) -> None:
    msg = tu.place(key.address, 1, gtb=chain.height + 5)
    memo = chain.send(key, msg, memo="x" * 257)
    assert (memo.codespace, memo.code, memo.raw_log) == (
        "sdk",
        12,
        "maximum number of characters is 256 but received 257 characters: memo too large",
    )
    assert chain.send(key, msg, memo="y" * 256).code == 0
    timed_out = chain.send(key, tu.place(key.address, 2, gtb=chain.height + 5), timeout_height=chain.height)
    assert (timed_out.codespace, timed_out.code, timed_out.raw_log) == (
        "sdk",
        30,
        f"block height: {chain.height + 1}, timeout height: {chain.height}: tx timeout height",
    )


def test_short_term_timeout_height_below_good_til_block_is_rejected(chain: Harness, key: Key) -> None:
    gtb = chain.height + 10
    response = chain.send(key, tu.place(key.address, 1, gtb=gtb), timeout_height=gtb - 1)
    assert (response.codespace, response.code, response.raw_log) == (
        "sdk",
        18,
        "timeout height (if non-zero) may not be less than `goodTilBlock` for a short-term place order: "
        "invalid request",
    )
    assert chain.send(key, tu.place(key.address, 1, gtb=gtb), timeout_height=gtb).code == 0


def test_upstream_message_vectors_decode_and_map(shared_fixtures: Path) -> None:
    """The official client's message encodings decode to the engine values they describe."""
    from v4_proto.dydxprotocol.clob import tx_pb2 as clob_tx

    from nautilus_dydx.emulator.validator.messages import order_from_proto

    data = json.loads(
        (shared_fixtures / "dydx-upstream" / "py_v2_proto_serialization_vectors.json").read_text()
    )
    vector = data["vectors"]["MsgPlaceOrder"]
    msg = clob_tx.MsgPlaceOrder.FromString(bytes.fromhex(vector["hex"]))
    order = order_from_proto(msg.order)
    inputs = vector["inputs"]
    assert order.key.owner == inputs["order_id"]["owner"]
    assert order.key.order_flags == inputs["order_id"]["order_flags"] == 64
    assert (order.side, order.quantums, order.subticks) == ("BUY", inputs["quantums"], inputs["subticks"])
    assert (order.good_til_block, order.good_til_block_time) == (None, inputs["good_til_block_time"])
    assert order.time_in_force == "GTT"
    assert order.client_metadata == 2
