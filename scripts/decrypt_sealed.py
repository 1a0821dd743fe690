#!/usr/bin/env python3
"""Decrypts a cfdr sealed artifact from the README's specification alone, with the standard
`cryptography` package: an independent check that the format is what the README says.

usage: decrypt_sealed.py KEY_HEX SEALED_FILE > plaintext
"""
import struct
import sys

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

HEADER_LEN, TAG_LEN = 59, 16


def hkdf(key, salt, info):
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(key)


def main(key_hex, path, out):
    key = bytes.fromhex(key_hex.strip())
    with open(path, "rb") as f:
        header = f.read(HEADER_LEN)
        if len(header) != HEADER_LEN or header[:8] != b"CFDRSEAL":
            sys.exit("not a sealed artifact")
        if header[8] != 1 or header[9] != 1:
            sys.exit(f"unknown version {header[8]} or algorithm {header[9]}")
        chunk = struct.unpack(">I", header[12:16])[0]
        salt, prefix, key_id = header[16:48], header[48:55], header[55:59]
        if hkdf(key, None, b"cfdr key id v1")[:4] != key_id:
            sys.exit(f"sealed with key {key_id.hex()}, not with this key")
        aead = AESGCM(hkdf(key, salt, b"cfdr artifact key v1"))
        index, current = 0, f.read(chunk + TAG_LEN)
        while True:
            following = f.read(chunk + TAG_LEN) if len(current) == chunk + TAG_LEN else b""
            last = not following
            nonce = prefix + struct.pack(">I", index) + bytes([1 if last else 0])
            out.write(aead.decrypt(nonce, current, header))  # raises InvalidTag on any damage
            if last:
                break
            current, index = following, index + 1


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.stdout.buffer)
