"""SRTP for the test phone (RFC 3711): AES-CM-128 encryption with HMAC-SHA1-80 authentication,
keys exchanged in the SDP (SDES, RFC 4568 ``a=crypto``). RTP only; RTCP is not sent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .errors import SipError

SUITE = "AES_CM_128_HMAC_SHA1_80"
MASTER_KEY_BYTES = 16
MASTER_SALT_BYTES = 14
TAG_BYTES = 10
_LABEL_ENCRYPTION, _LABEL_AUTH, _LABEL_SALT = 0, 1, 2


class SrtpError(SipError):
    """An SRTP packet that fails authentication, or an unusable crypto attribute."""


def _aes_ctr_xor(key: bytes, counter_block: bytes, data: bytes) -> bytes:
    """``data`` XORed with the AES counter-mode keystream starting at ``counter_block``."""
    encryptor = Cipher(algorithms.AES(key), modes.CTR(counter_block)).encryptor()
    return encryptor.update(data) + encryptor.finalize()


def _aes_ctr(key: bytes, counter_block: bytes, length: int) -> bytes:
    """``length`` bytes of AES counter-mode keystream starting at ``counter_block``."""
    return _aes_ctr_xor(key, counter_block, bytes(length))


def _derive(master_key: bytes, master_salt: bytes, label: int, length: int) -> bytes:
    """A session key (RFC 3711 4.3.1 with key_derivation_rate 0, so r = 0): the PRF is
    AES-CM keyed by the master key, at IV = (label << 48 XOR master salt) << 16."""
    x = (label << 48) ^ int.from_bytes(master_salt, "big")
    return _aes_ctr(master_key, (x << 16).to_bytes(16, "big"), length)


@dataclass(frozen=True)
class MasterKey:
    """A master key and salt, as carried in ``inline:`` of an ``a=crypto`` line."""

    key: bytes
    salt: bytes

    @classmethod
    def generate(cls) -> MasterKey:
        return cls(os.urandom(MASTER_KEY_BYTES), os.urandom(MASTER_SALT_BYTES))

    @classmethod
    def from_attribute(cls, value: str) -> tuple[int, MasterKey]:
        """Parse ``<tag> AES_CM_128_HMAC_SHA1_80 inline:<base64>[|lifetime][|mki]``."""
        parts = value.split()
        if len(parts) < 3 or not parts[0].isdigit():
            raise SrtpError(f"malformed crypto attribute: {value}")
        if parts[1] != SUITE:
            raise SrtpError(f"unsupported SRTP suite {parts[1]}")
        if not parts[2].startswith("inline:"):
            raise SrtpError(f"crypto attribute without inline key: {value}")
        encoded = parts[2][len("inline:"):].split("|", 1)[0]
        try:
            raw = base64.b64decode(encoded, validate=True)
        except ValueError:
            raise SrtpError("crypto key is not base64") from None
        if len(raw) != MASTER_KEY_BYTES + MASTER_SALT_BYTES:
            raise SrtpError(f"crypto key is {len(raw)} bytes, expected 30")
        return int(parts[0]), cls(raw[:MASTER_KEY_BYTES], raw[MASTER_KEY_BYTES:])

    def attribute(self, tag: int = 1) -> str:
        """The value after ``a=crypto:``."""
        return f"{tag} {SUITE} inline:{base64.b64encode(self.key + self.salt).decode()}"


def _header_length(packet: bytes) -> int:
    """Bytes of the RTP header (fixed part, CSRCs, extension): the part left in the clear."""
    if len(packet) < 12:
        raise SrtpError("RTP packet shorter than its header")
    length = 12 + 4 * (packet[0] & 0x0F)
    if packet[0] & 0x10:
        if len(packet) < length + 4:
            raise SrtpError("RTP packet has truncated header extension")
        length += 4 + 4 * struct.unpack_from("!H", packet, length + 2)[0]
    if len(packet) < length:
        raise SrtpError("RTP packet has truncated CSRC list")
    return length


class SrtpContext:
    """One direction of one SRTP stream: session keys and the rollover counter per SSRC."""

    def __init__(self, master: MasterKey) -> None:
        self._key = _derive(master.key, master.salt, _LABEL_ENCRYPTION, 16)
        self._auth = _derive(master.key, master.salt, _LABEL_AUTH, 20)
        self._salt = int.from_bytes(_derive(master.key, master.salt, _LABEL_SALT, 14), "big")
        self._roc: dict[int, int] = {}
        self._highest: dict[int, int] = {}

    def _xor_keystream(self, ssrc: int, index: int, data: bytes) -> bytes:
        """Encrypt or decrypt (the same) a payload at packet index ``index`` (RFC 3711 4.1.1)."""
        iv = (self._salt << 16) ^ (ssrc << 64) ^ (index << 16)
        return _aes_ctr_xor(self._key, iv.to_bytes(16, "big"), data)

    def _tag(self, authenticated: bytes, roc: int) -> bytes:
        digest = hmac.new(self._auth, authenticated + struct.pack("!I", roc), hashlib.sha1)
        return digest.digest()[:TAG_BYTES]

    def _crypt(self, packet: bytes, roc: int) -> bytes:
        head = _header_length(packet)
        seq, ssrc = struct.unpack_from("!H", packet, 2)[0], struct.unpack_from("!I", packet, 8)[0]
        return packet[:head] + self._xor_keystream(ssrc, (roc << 16) | seq, packet[head:])

    def protect(self, packet: bytes) -> bytes:
        """Encrypt and sign an outgoing RTP packet (sequence numbers must only go up)."""
        _header_length(packet)
        seq, ssrc = struct.unpack_from("!H", packet, 2)[0], struct.unpack_from("!I", packet, 8)[0]
        last = self._highest.get(ssrc)
        roc = self._roc.get(ssrc, 0)
        if last is not None and seq < last and last - seq > 0x8000:
            roc = (roc + 1) & 0xFFFFFFFF  # the sequence number wrapped
        self._roc[ssrc], self._highest[ssrc] = roc, seq
        encrypted = self._crypt(packet, roc)
        return encrypted + self._tag(encrypted, roc)

    def unprotect(self, packet: bytes) -> bytes:
        """Check and decrypt an incoming SRTP packet; raises SrtpError if it fails."""
        if len(packet) < 12 + TAG_BYTES:
            raise SrtpError("SRTP packet too short")
        body, tag = packet[:-TAG_BYTES], packet[-TAG_BYTES:]
        seq, ssrc = struct.unpack_from("!H", body, 2)[0], struct.unpack_from("!I", body, 8)[0]
        roc = self._guess_roc(ssrc, seq)
        if not hmac.compare_digest(tag, self._tag(body, roc)):
            raise SrtpError("SRTP authentication failed")
        last = self._highest.get(ssrc)
        if last is None or ((roc << 16) | seq) > ((self._roc.get(ssrc, 0) << 16) | last):
            self._roc[ssrc], self._highest[ssrc] = roc, seq
        return self._crypt(body, roc)

    def _guess_roc(self, ssrc: int, seq: int) -> int:
        """The rollover counter of ``seq`` (RFC 3711 3.3.1, Appendix A)."""
        last = self._highest.get(ssrc)
        roc = self._roc.get(ssrc, 0)
        if last is None:
            return roc
        if last < 0x8000:
            return (roc - 1) & 0xFFFFFFFF if seq - last > 0x8000 and roc > 0 else roc
        return (roc + 1) & 0xFFFFFFFF if last - 0x8000 > seq else roc
