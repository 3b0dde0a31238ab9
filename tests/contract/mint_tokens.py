#!/usr/bin/env python3
"""Mint fixture credentials for contract tests against a running Cloak server.

Given a tenant API key, creates (idempotently) a user, a user token, registers an
Ed25519 device and logs it in (challenge + signature over signing::login_message).
Prints shell `export` lines:
  CLOAK_USER_ID, CLOAK_USER_TOKEN, CLOAK_DEVICE_ID, CLOAK_DEVICE_TOKEN, CLOAK_TENANT_ID

Usage: mint_tokens.py BASE_URL API_KEY
Only the Python stdlib + `cryptography` are needed.
"""
import base64
import json
import sys
import urllib.error
import urllib.request
import uuid

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

LOGIN_CONTEXT = b"cloak/v1/device-login\0"


def call(base, method, path, token, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            raw = r.read()
            return r.status, (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, raw.decode("utf-8", "replace")


def must(status_body, *ok):
    status, body = status_body
    if status not in ok:
        sys.exit(f"unexpected {status}: {body}")
    return body


def main():
    base, api_key = sys.argv[1].rstrip("/"), sys.argv[2]
    ext = "contract-" + uuid.uuid4().hex[:8]
    user = must(call(base, "POST", "/v1/users", api_key,
                     {"external_id": ext, "display_name": "Contract Tester"}), 201)
    ut = must(call(base, "POST", f"/v1/users/{user['id']}/tokens", api_key), 201)
    sk = Ed25519PrivateKey.generate()
    pk = sk.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    dev = must(call(base, "POST", "/v1/devices", ut["token"],
                    {"identity_key": base64.b64encode(pk).decode(), "name": "contract"}), 200, 201)
    ch = must(call(base, "POST", "/v1/auth/challenge", "", {"device_id": dev["id"]}), 200)
    nonce = base64.b64decode(ch["nonce"])
    msg = LOGIN_CONTEXT + uuid.UUID(dev["tenant_id"]).bytes + uuid.UUID(dev["id"]).bytes + nonce
    sig = base64.b64encode(sk.sign(msg)).decode()
    tok = must(call(base, "POST", "/v1/auth/login", "",
                    {"device_id": dev["id"], "nonce": ch["nonce"], "signature": sig}), 200)
    for k, v in [("CLOAK_TENANT_ID", dev["tenant_id"]), ("CLOAK_USER_ID", user["id"]),
                 ("CLOAK_USER_TOKEN", ut["token"]), ("CLOAK_DEVICE_ID", dev["id"]),
                 ("CLOAK_DEVICE_TOKEN", tok["token"])]:
        print(f"export {k}={v}")


if __name__ == "__main__":
    main()
