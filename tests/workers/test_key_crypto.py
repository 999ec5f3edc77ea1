"""Sealing keys: AES-256-GCM with the name and slot bound in, refusals that say why."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from workers.key_crypto import Keyring, KeyStoreError, MasterKey, SealedValue
from workers.settings import WorkerSettings

VALUE = "sk-proj-0123456789abcdefghij"


def master(tag: str = "test") -> MasterKey:
    return MasterKey.parse(base64.urlsafe_b64encode(os.urandom(32)).decode(), tag)


def test_a_sealed_value_opens_to_itself_and_holds_nothing_of_it_but_its_last_four():
    ring = Keyring(master())
    sealed = ring.seal("openai", 1, VALUE)
    assert ring.open("openai", SealedValue.from_json("openai", sealed.to_json())) == VALUE
    text = sealed.to_json()
    assert VALUE not in text
    assert VALUE[:8] not in text
    assert sealed.last4 == VALUE[-4:]
    assert sealed.kid == ring.require().key_id


def test_every_seal_has_its_own_nonce():
    ring = Keyring(master())
    nonces = {ring.seal("openai", 1, VALUE).nonce for _ in range(200)}
    assert len(nonces) == 200
    assert all(len(base64.b64decode(n)) == 12 for n in nonces)


@pytest.mark.parametrize(
    ("name", "slot"), [("another", 1), ("openai", 2)], ids=["another name", "another slot"]
)
def test_a_value_moved_to_another_name_or_slot_fails_its_tag(name, slot):
    ring = Keyring(master())
    sealed = ring.seal("openai", 1, VALUE)
    moved = sealed.model_copy(update={"slot": slot})
    with pytest.raises(KeyStoreError, match=r"failed its integrity check \(AES-GCM tag\)"):
        ring.open(name, moved)


def test_a_flipped_byte_is_refused_and_the_message_holds_no_secret():
    ring = Keyring(master())
    sealed = ring.seal("openai", 1, VALUE)
    raw = bytearray(base64.b64decode(sealed.ciphertext))
    raw[0] ^= 0x80
    tampered = sealed.model_copy(update={"ciphertext": base64.b64encode(raw).decode()})
    with pytest.raises(KeyStoreError) as refused:
        ring.open("openai", tampered)
    assert "failed its integrity check (AES-GCM tag)" in str(refused.value)
    assert VALUE not in str(refused.value)


def test_a_wrong_master_key_is_named_by_id_not_tried():
    sealed = Keyring(master()).seal("openai", 1, VALUE)
    other = Keyring(master("other"))
    with pytest.raises(KeyStoreError, match=f"sealed under master key {sealed.kid}"):
        other.open("openai", sealed)


def test_the_previous_master_key_still_opens_what_it_sealed():
    old, new = master("old"), master("new")
    sealed = Keyring(old).seal("openai", 3, VALUE)
    assert Keyring(new, (old,)).open("openai", sealed) == VALUE
    assert Keyring(new, (old,)).seal("openai", 3, VALUE).kid == new.key_id


def test_without_a_master_key_nothing_is_sealed_or_opened():
    ring = Keyring.from_settings(WorkerSettings.model_validate({}))
    assert ring.current is None
    sealed = Keyring(master()).seal("openai", 1, VALUE)
    for act in (lambda: ring.seal("openai", 1, VALUE), lambda: ring.open("openai", sealed)):
        with pytest.raises(KeyStoreError, match="TURNOUT_ENCRYPTION_KEY"):
            act()


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("not base64 at all!", "is not base64"),
        (base64.b64encode(os.urandom(16)).decode(), "holds 16 bytes"),
        (base64.b64encode(os.urandom(48)).decode(), "holds 48 bytes"),
        (base64.b64encode(b"\x00" * 32).decode(), "is a pattern"),
        (base64.b64encode(b"abcd" * 8).decode(), "is a pattern"),
    ],
)
def test_weak_or_mistyped_master_keys_are_refused_with_how_to_make_one(text, says):
    with pytest.raises(KeyStoreError) as refused:
        MasterKey.parse(text, "TURNOUT_ENCRYPTION_KEY")
    assert says in str(refused.value)
    assert "secrets.token_bytes(32)" in str(refused.value)
    assert text not in str(refused.value)


def test_the_master_key_may_come_from_a_file_but_not_from_both(tmp_path: Path):
    text = base64.urlsafe_b64encode(os.urandom(32)).decode()
    path = tmp_path / "master.key"
    path.write_text(text + "\n")
    ring = Keyring.from_settings(
        WorkerSettings.model_validate({"TURNOUT_ENCRYPTION_KEY_FILE": str(path)})
    )
    assert ring.require().key_id == MasterKey.parse(text, "x").key_id
    assert text in ring.texts
    with pytest.raises(KeyStoreError, match="not both"):
        Keyring.from_settings(
            WorkerSettings.model_validate(
                {"TURNOUT_ENCRYPTION_KEY_FILE": str(path), "TURNOUT_ENCRYPTION_KEY": text}
            )
        )
    with pytest.raises(KeyStoreError, match="cannot be read"):
        Keyring.from_settings(
            WorkerSettings.model_validate({"TURNOUT_ENCRYPTION_KEY_FILE": str(tmp_path / "no")})
        )


def test_a_record_that_is_not_a_sealed_value_is_refused():
    with pytest.raises(KeyStoreError, match="not a sealed value"):
        SealedValue.from_json("openai", '{"plaintext": "sk-..."}')
