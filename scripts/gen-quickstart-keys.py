#!/usr/bin/env python3
"""Generate the committed quickstart key material in examples/quickstart/keys/.

Run once; the output is committed. Needs `pip install cryptography pynacl`.

    scripts/gen-quickstart-keys.py [KEYS_DIR]

Writes:
  release/cosign.pub, release/cosign.key  a real cosign key pair (ECDSA P-256), the private key
                                          encrypted as cosign does it: scrypt (N=32768, r=8, p=1)
                                          + NaCl secretbox around the PKCS#8 DER, in a JSON
                                          envelope under the PEM label ENCRYPTED SIGSTORE PRIVATE KEY.
                                          Password: $COSIGN_PASSWORD, default keywarden-quickstart.
  release/legacy-signing.crt              code-signing certificate, 2023-06-01 .. 2036-01-01
  release/old-signing.crt                 code-signing certificate, 2022-01-15 .. 2025-01-15
  unsorted/ci-deploy.pem                  unencrypted Ed25519 PKCS#8 private key

The certificates are self-signed and their private keys are thrown away.
The certificate that expires soon is not committed: `cargo run --example quickstart_material`
writes it.
"""

import base64
import datetime
import hashlib
import json
import os
import sys
from pathlib import Path

import nacl.secret
import nacl.utils
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# cosign's (go-securesystemslib's) scrypt parameters and sizes.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 32768, 8, 1
SALT_SIZE, KEY_SIZE = 32, 32
COSIGN_LABEL = "ENCRYPTED SIGSTORE PRIVATE KEY"


def b64(data: bytes) -> str:
    return base64.standard_b64encode(data).decode()


def pem(label: str, data: bytes) -> str:
    body = b64(data)
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n"


def scrypt_key(password: bytes, salt: bytes) -> bytes:
    return hashlib.scrypt(
        password, salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=KEY_SIZE, maxmem=64 * 1024 * 1024
    )


def cosign_encrypt(pkcs8_der: bytes, password: bytes) -> bytes:
    """The JSON envelope cosign writes (field order and compact form as Go's encoding/json)."""
    salt = nacl.utils.random(SALT_SIZE)
    nonce = nacl.utils.random(nacl.secret.SecretBox.NONCE_SIZE)
    sealed = nacl.secret.SecretBox(scrypt_key(password, salt)).encrypt(pkcs8_der, nonce)
    envelope = {
        "kdf": {
            "name": "scrypt",
            "params": {"N": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P},
            "salt": b64(salt),
        },
        "cipher": {"name": "nacl/secretbox", "nonce": b64(nonce)},
        "ciphertext": b64(sealed.ciphertext),
    }
    return json.dumps(envelope, separators=(",", ":")).encode()


def cosign_decrypt(envelope_json: bytes, password: bytes) -> bytes:
    envelope = json.loads(envelope_json)
    key = scrypt_key(password, base64.standard_b64decode(envelope["kdf"]["salt"]))
    box = nacl.secret.SecretBox(key)
    return box.decrypt(
        base64.standard_b64decode(envelope["ciphertext"]),
        base64.standard_b64decode(envelope["cipher"]["nonce"]),
    )


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(f"wrote {path}")


def cosign_pair(keys: Path, password: bytes) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    pkcs8 = private.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    envelope = cosign_encrypt(pkcs8, password)
    # Round trip: the envelope opens with the password and holds the key of cosign.pub.
    opened = serialization.load_der_private_key(cosign_decrypt(envelope, password), None)
    assert opened.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == public_pem
    write(keys / "release" / "cosign.key", pem(COSIGN_LABEL, envelope))
    write(keys / "release" / "cosign.pub", public_pem.decode())


def code_signing_cert(common_name: str, not_before: datetime.datetime, not_after: datetime.datetime) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example Corp"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def utc(year: int, month: int, day: int) -> datetime.datetime:
    return datetime.datetime(year, month, day, tzinfo=datetime.timezone.utc)


def main() -> None:
    root = Path(__file__).resolve().parent.parent
    keys = Path(sys.argv[1]) if len(sys.argv) > 1 else root / "examples" / "quickstart" / "keys"
    password = os.environ.get("COSIGN_PASSWORD", "keywarden-quickstart").encode()

    cosign_pair(keys, password)
    write(
        keys / "release" / "legacy-signing.crt",
        code_signing_cert("Legacy Release Signing", utc(2023, 6, 1), utc(2036, 1, 1)),
    )
    write(
        keys / "release" / "old-signing.crt",
        code_signing_cert("Old Release Signing", utc(2022, 1, 15), utc(2025, 1, 15)),
    )
    deploy = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    write(keys / "unsorted" / "ci-deploy.pem", deploy.decode())


if __name__ == "__main__":
    main()
