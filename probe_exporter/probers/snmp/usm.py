"""SNMPv3 User-based Security Model cryptography (RFC 3414, RFC 3826, RFC 7860) on hashlib/hmac and
`cryptography`: key localisation, message authentication, DES-CBC and AES-CFB privacy.

Password-to-key hashes 1 MB per password, so localised keys are cached per (password, protocol,
engine ID) for the life of the process. The cache is bounded by the configured users times the
engines they talk to; it holds derived keys, never the passwords in clear (the key of the cache is a
digest). Key extension for AES-192/256 follows gosnmp, which snmp_exporter uses: AES192/AES256
extend as draft-blumenthal-aes-usm-04 (the key followed by its hash), AES192C/AES256C as
draft-reeder-snmpv3-usm-3desede (Cisco's: the key followed by the key localised from it as a password).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

try:  # cryptography 47 moved CFB among the "decrepit" modes; the old place goes away in 49
    from cryptography.hazmat.decrepit.ciphers.modes import CFB
except ImportError:  # pragma: no cover - older cryptography
    CFB = modes.CFB  # type: ignore[misc]

# auth protocol -> (hashlib name, length of the truncated MAC in msgAuthenticationParameters)
AUTH_PROTOCOLS: dict[str, tuple[str, int]] = {
    "MD5": ("md5", 12),
    "SHA": ("sha1", 12),
    "SHA224": ("sha224", 16),
    "SHA256": ("sha256", 24),
    "SHA384": ("sha384", 32),
    "SHA512": ("sha512", 48),
}
# priv protocol -> (cipher key length, key extension when the localised key is shorter)
PRIV_PROTOCOLS: dict[str, tuple[int, str]] = {
    "DES": (16, ""),  # 8 bytes of key, 8 bytes of pre-IV
    "AES": (16, ""),
    "AES192": (24, "blumenthal"),
    "AES256": (32, "blumenthal"),
    "AES192C": (24, "reeder"),
    "AES256C": (32, "reeder"),
}

_PASSWORD_BYTES = 1_048_576
# Localised keys kept; each is a few dozen bytes. Far above users x engines of a real config.
_CACHE_SIZE = 4096


class UsmError(ValueError):
    """A cryptographic step failed; the message names what, never a key or password."""


def password_to_key(password: bytes, hash_name: str) -> bytes:
    """RFC 3414 A.2: the digest of the password repeated to 1 MB."""
    if not password:
        raise UsmError("empty password")
    # One megabyte made once and hashed in one call: the key is cached, so this runs rarely.
    stream = (password * (_PASSWORD_BYTES // len(password) + 1))[:_PASSWORD_BYTES]
    return hashlib.new(hash_name, stream).digest()


def localize(key: bytes, engine_id: bytes, hash_name: str) -> bytes:
    return hashlib.new(hash_name, key + engine_id + key).digest()


_cache: OrderedDict[tuple[bytes, str, str, bytes], bytes] = OrderedDict()


def _cache_key(password: bytes, auth_protocol: str, priv_protocol: str, engine_id: bytes) -> tuple[bytes, str, str,
                                                                                                     bytes]:
    # A digest, so the cache's keys are no copy of the password.
    return hashlib.sha256(b"usm-key-cache\0" + password).digest(), auth_protocol, priv_protocol, engine_id


def _cached(key: tuple[bytes, str, str, bytes]) -> bytes | None:
    found = _cache.get(key)
    if found is not None:
        _cache.move_to_end(key)
    return found


def _store(key: tuple[bytes, str, str, bytes], value: bytes) -> bytes:
    _cache[key] = value
    if len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)
    return value


def auth_key(password: bytes, auth_protocol: str, engine_id: bytes) -> bytes:
    """The localised authentication key (the HMAC key)."""
    key = _cache_key(password, auth_protocol, "", engine_id)
    found = _cached(key)
    if found is not None:
        return found
    hash_name = AUTH_PROTOCOLS[auth_protocol][0]
    return _store(key, localize(password_to_key(password, hash_name), engine_id, hash_name))


def priv_key(password: bytes, auth_protocol: str, priv_protocol: str, engine_id: bytes) -> bytes:
    """The privacy key material: localised with the auth protocol's hash, extended, cut to length."""
    key = _cache_key(password, auth_protocol, priv_protocol, engine_id)
    found = _cached(key)
    if found is not None:
        return found
    hash_name = AUTH_PROTOCOLS[auth_protocol][0]
    length, extension = PRIV_PROTOCOLS[priv_protocol]
    material = localize(password_to_key(password, hash_name), engine_id, hash_name)
    if len(material) < length:
        if extension == "blumenthal":
            material += hashlib.new(hash_name, material).digest()
        elif extension == "reeder":
            material += localize(password_to_key(material, hash_name), engine_id, hash_name)
    if len(material) < length:
        raise UsmError(f"{priv_protocol} needs a longer key than {auth_protocol} gives")
    return _store(key, material[:length])


def clear_cache() -> None:
    _cache.clear()
    _hmac_bases.clear()
    _ciphers.clear()


# --- authentication ---------------------------------------------------------------------------------


# HMAC state after the key, per localised key: copying it skips the key schedule per message.
_hmac_bases: OrderedDict[tuple[str, bytes], hmac.HMAC] = OrderedDict()


def mac(auth_protocol: str, key: bytes, message: bytes) -> bytes:
    """The truncated HMAC of the whole message (with zeros in msgAuthenticationParameters)."""
    hash_name, length = AUTH_PROTOCOLS[auth_protocol]
    base = _hmac_bases.get((hash_name, key))
    if base is None:
        base = _hmac_bases[(hash_name, key)] = hmac.new(key, None, hash_name)
        if len(_hmac_bases) > _CACHE_SIZE:
            _hmac_bases.popitem(last=False)
    digest = base.copy()
    digest.update(message)
    return digest.digest()[:length]


def mac_length(auth_protocol: str) -> int:
    return AUTH_PROTOCOLS[auth_protocol][1]


# --- privacy ----------------------------------------------------------------------------------------

# Salts must not repeat under one key: a random start and a counter, as RFC 3414/3826 suggest. Drawn
# again in each forked worker: workers all counting on from their parent's start would send the same
# salt, so the same AES IV within one engine-time second, under the same key.
def _new_salts() -> None:
    global _des_salts, _aes_salts
    _des_salts = itertools.count(int.from_bytes(os.urandom(4), "big"))
    _aes_salts = itertools.count(int.from_bytes(os.urandom(8), "big"))


_des_salts: itertools.count[int]
_aes_salts: itertools.count[int]
_new_salts()
os.register_at_fork(after_in_child=_new_salts)


@dataclass(frozen=True)
class Encrypted:
    data: bytes
    salt: bytes  # msgPrivacyParameters


def _clock(boots: int, engine_time: int) -> bytes:
    # An agent's values are 31-bit by the RFC; masked so a hostile one cannot make us raise.
    return (boots & 0xFFFFFFFF).to_bytes(4, "big") + (engine_time & 0xFFFFFFFF).to_bytes(4, "big")


def _xor(left: bytes, right: bytes, size: int) -> bytes:
    return (int.from_bytes(left, "big") ^ int.from_bytes(right, "big")).to_bytes(size, "big")


class _KeyCiphers:
    """One privacy key's cipher contexts, made once and reused for every message under the key.

    A `Cipher(...)` per message costs more than the AES itself on a short message (key schedule,
    argument checks). Both modes chain on ciphertext: the next block's input is the ciphertext block
    just fed (decrypting) or just produced (encrypting), so a context is moved to a message's IV by
    one block before the message, whose output is dropped:
    - decrypting, that block is the IV itself;
    - encrypting, it is the block that encrypts to the IV from the context's last ciphertext block:
      IV xor E(last) for CFB, D(IV) xor last for CBC (`steer` is the bare block cipher for that).
    Zeros after the data keep the contexts block-aligned, so each message is one `update`."""

    __slots__ = ("cbc", "decryptor", "encryptor", "last", "lock", "size", "steer")

    def __init__(self, priv_protocol: str, key: bytes) -> None:
        self.cbc = priv_protocol == "DES"
        cipher: algorithms.AES | TripleDES
        mode: modes.Mode
        if self.cbc:
            cipher, mode = TripleDES(key[:8] * 3), modes.CBC(b"\0" * 8)  # three equal keys: single DES
        else:
            cipher, mode = algorithms.AES(key), CFB(b"\0" * 16)
        chained = Cipher(cipher, mode)
        self.size = cipher.block_size // 8
        self.decryptor = chained.decryptor()
        self.encryptor = chained.encryptor()
        block = Cipher(cipher, modes.ECB())
        self.steer = block.decryptor() if self.cbc else block.encryptor()
        self.last = b"\0" * self.size  # the encryptor's chaining block (its IV before any message)
        self.lock = threading.Lock()  # encrypting reads and moves `last`: one message at a time

    def decrypt(self, iv: bytes, data: bytes) -> bytes:
        size = self.size
        return self.decryptor.update(iv + data + b"\0" * (-len(data) % size))[size:size + len(data)]

    def encrypt(self, iv: bytes, plaintext: bytes) -> bytes:
        size = self.size
        with self.lock:
            if self.cbc:
                steer = _xor(self.steer.update(iv), self.last, size)
            else:
                steer = _xor(self.steer.update(self.last), iv, size)
            out = self.encryptor.update(steer + plaintext + b"\0" * (-len(plaintext) % size))
            self.last = out[-size:]
        return out[size:size + len(plaintext)]


_ciphers: OrderedDict[tuple[str, bytes], _KeyCiphers] = OrderedDict()


def _ciphers_of(priv_protocol: str, key: bytes) -> _KeyCiphers:
    found = _ciphers.get((priv_protocol, key))
    if found is None:
        found = _ciphers[(priv_protocol, key)] = _KeyCiphers(priv_protocol, key)
        if len(_ciphers) > _CACHE_SIZE:
            _ciphers.popitem(last=False)
    return found


def encrypt(priv_protocol: str, key: bytes, boots: int, engine_time: int, plaintext: bytes) -> Encrypted:
    ciphers = _ciphers_of(priv_protocol, key)
    if priv_protocol == "DES":
        salt = _clock(boots, next(_des_salts))
        padded = plaintext + b"\0" * (-len(plaintext) % 8)
        return Encrypted(ciphers.encrypt(_xor(key[8:16], salt, 8), padded), salt)
    salt = (next(_aes_salts) & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "big")
    return Encrypted(ciphers.encrypt(_clock(boots, engine_time) + salt, plaintext), salt)


def decrypt(priv_protocol: str, key: bytes, boots: int, engine_time: int, salt: bytes, data: bytes) -> bytes:
    """The plaintext scoped PDU (DES leaves its padding; the BER length inside bounds it)."""
    if len(salt) != 8:
        raise UsmError("decryption error: privacy parameters are not 8 bytes")
    if priv_protocol == "DES":
        if len(data) % 8:
            raise UsmError("decryption error: DES data is not a multiple of 8 bytes")
        iv = _xor(key[8:16], salt, 8)
    else:
        iv = _clock(boots, engine_time) + salt
    return _ciphers_of(priv_protocol, key).decrypt(iv, data)
