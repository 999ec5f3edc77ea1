"""Sealing API keys for the key store: AES-256-GCM under a master key only workers and the
operator's ``turnout keys`` hold.

Each value is sealed with a fresh random 96-bit nonce, and with the key's name and slot (its
place in the name's history) as associated data: a sealed value copied onto another name, or
back onto an older slot, fails GCM's tag like a flipped byte does. Each sealed value names the
master key that sealed it by an id (the first 8 bytes of the key's SHA-256: it says which key,
not anything about it), so a new master key can take over while the old one still opens what it
sealed (``TURNOUT_ENCRYPTION_KEY_PREVIOUS``) until ``turnout keys reencrypt`` has sealed every
value again.

Fail closed: without a master key nothing is sealed or opened, and a value that does not open
(another master key, a changed byte) is refused with the reason, never used and never read as
plaintext. There is no plaintext mode.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from routing.errors import TurnoutError
from workers.settings import WorkerSettings

#: AES-256: the master key's length in bytes.
MASTER_KEY_BYTES = 32
#: GCM's standard nonce (96 bits), random per value: 2^32 seals under one key stay far from
#: a collision.
NONCE_BYTES = 12
#: A random 32-byte key has about 28 distinct byte values; fewer than this is a pattern.
MIN_DISTINCT_BYTES = 16
#: How every refusal of a master key says to make one.
MAKE_MASTER_KEY = (
    "make one with: python -c 'import base64, secrets; "
    "print(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())'"
)
SEAL_FORMAT = 1


class KeyStoreError(TurnoutError):
    """The key store refused: no master key, a wrong one, a value that failed its check. The
    message says why and what to do; it never holds a key or a master key."""


@dataclass(frozen=True)
class MasterKey:
    key: bytes = field(repr=False)
    #: Where it came from (a variable's name or a file's path), for messages.
    source: str

    @property
    def key_id(self) -> str:
        return hashlib.sha256(self.key).hexdigest()[:16]

    @classmethod
    def parse(cls, text: str, source: str) -> MasterKey:
        """A master key from its base64 text (URL-safe or standard, padding optional)."""
        cleaned = text.strip()
        try:
            padded = cleaned + "=" * (-len(cleaned) % 4)
            raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
        except (binascii.Error, ValueError):
            raise KeyStoreError(
                f"{source} is not base64: the master key is 32 random bytes in base64; "
                f"{MAKE_MASTER_KEY}"
            ) from None
        if len(raw) != MASTER_KEY_BYTES:
            raise KeyStoreError(
                f"{source} holds {len(raw)} bytes; AES-256 needs exactly {MASTER_KEY_BYTES}; "
                f"{MAKE_MASTER_KEY}"
            )
        if len(set(raw)) < MIN_DISTINCT_BYTES:
            raise KeyStoreError(
                f"{source} is a pattern, not a random key ({len(set(raw))} distinct bytes of "
                f"32); {MAKE_MASTER_KEY}"
            )
        return cls(raw, source)


class SealedValue(BaseModel):
    """One sealed API key as the store keeps it (JSON in the record's ``current``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: int = SEAL_FORMAT
    #: Which master key sealed it (MasterKey.key_id).
    kid: str = Field(pattern=r"^[0-9a-f]{16}$")
    #: Its place in the name's history: bound into the seal, and part of its usage id.
    slot: int = Field(ge=1)
    nonce: str
    ciphertext: str
    #: The key's last 4 characters, as ``turnout keys list`` shows it ('' for a short key).
    last4: str = Field(max_length=4)

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, name: str, text: str) -> SealedValue:
        try:
            return cls.model_validate(json.loads(text))
        except (ValueError, ValidationError):
            raise KeyStoreError(
                f"the stored value of {name} is not a sealed value turnout can read (changed "
                "by hand?); set it again with turnout keys rotate"
            ) from None

    @property
    def masked(self) -> str:
        return f"…{self.last4}" if self.last4 else "…"


def associated_data(name: str, slot: int) -> bytes:
    """What each seal is bound to besides its ciphertext: the name and the slot."""
    return f"turnout-keystore/{SEAL_FORMAT}\0{name}\0{slot}".encode()


def last4_of(value: str) -> str:
    """The last 4 characters, only of a key long enough that they say little (12 or more)."""
    return value[-4:] if len(value) >= 12 else ""


@dataclass(frozen=True)
class Keyring:
    """The master key that seals (``current``) and those that may still open (``previous``,
    during a change of master key). ``missing`` says why there is none, when there is none."""

    current: MasterKey | None
    previous: tuple[MasterKey, ...] = ()
    missing: str = ""

    @classmethod
    def from_settings(cls, settings: WorkerSettings) -> Keyring:
        """The master keys this process was given; raises KeyStoreError for one given wrongly
        (a weak or mistyped key must stop whoever set it, not degrade to 'no key')."""
        current = _master_key(
            settings.encryption_key.get_secret_value() if settings.encryption_key else None,
            settings.encryption_key_file,
            "TURNOUT_ENCRYPTION_KEY",
        )
        previous = _master_key(
            settings.encryption_key_previous.get_secret_value()
            if settings.encryption_key_previous
            else None,
            settings.encryption_key_previous_file,
            "TURNOUT_ENCRYPTION_KEY_PREVIOUS",
        )
        if current is None:
            return cls(
                None,
                missing="TURNOUT_ENCRYPTION_KEY (or TURNOUT_ENCRYPTION_KEY_FILE) is not set "
                "here, so the key store can be neither read nor written",
            )
        return cls(current, (previous,) if previous is not None else ())

    def require(self) -> MasterKey:
        if self.current is None:
            raise KeyStoreError(f"{self.missing}; {MAKE_MASTER_KEY}")
        return self.current

    def seal(self, name: str, slot: int, value: str) -> SealedValue:
        master = self.require()
        nonce = os.urandom(NONCE_BYTES)
        ciphertext = AESGCM(master.key).encrypt(nonce, value.encode(), associated_data(name, slot))
        return SealedValue(
            kid=master.key_id,
            slot=slot,
            nonce=base64.b64encode(nonce).decode(),
            ciphertext=base64.b64encode(ciphertext).decode(),
            last4=last4_of(value),
        )

    def open(self, name: str, sealed: SealedValue) -> str:
        """The plaintext, or KeyStoreError saying why not. Never a guess: only the master key
        the value names is tried."""
        self.require()
        master = next((k for k in self._all() if k.key_id == sealed.kid), None)
        if master is None:
            held = ", ".join(k.key_id for k in self._all())
            raise KeyStoreError(
                f"{name} was sealed under master key {sealed.kid}, and this process holds "
                f"{held}: set TURNOUT_ENCRYPTION_KEY (or _PREVIOUS, while changing master "
                "keys) to the key that sealed it"
            )
        try:
            nonce = base64.b64decode(sealed.nonce, validate=True)
            ciphertext = base64.b64decode(sealed.ciphertext, validate=True)
            plain = AESGCM(master.key).decrypt(
                nonce, ciphertext, associated_data(name, sealed.slot)
            )
            return plain.decode()
        except (InvalidTag, binascii.Error, ValueError):
            raise KeyStoreError(
                f"{name} failed its integrity check (AES-GCM tag) under master key "
                f"{master.key_id}: the stored value was changed, or copied from another name; "
                "it is not used. Set it again with turnout keys rotate"
            ) from None

    def _all(self) -> tuple[MasterKey, ...]:
        return tuple(k for k in (self.current, *self.previous) if k is not None)

    @property
    def texts(self) -> list[str]:
        """The master keys' base64 texts, for the redactor: a log line never shows one."""
        return [base64.urlsafe_b64encode(k.key).decode() for k in self._all()]


def _master_key(value: str | None, file: Path | None, variable: str) -> MasterKey | None:
    if value and file:
        raise KeyStoreError(f"set {variable} or {variable}_FILE, not both")
    if file is not None:
        try:
            text = file.read_text()
        except OSError as exc:
            raise KeyStoreError(
                f"{variable}_FILE names {file}, which cannot be read ({exc.strerror})"
            ) from None
        return MasterKey.parse(text, f"{variable}_FILE ({file})")
    if value:
        return MasterKey.parse(value, variable)
    return None
