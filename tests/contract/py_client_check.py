#!/usr/bin/env python3
"""Drives the live server through the Python client generated from openapi/openapi.json
(openapi-python-client): create a user, mint a token, mint an invite and fetch its PNG,
list wallets and users, and read a 429's Retry-After.

Usage: py_client_check.py CLIENT_PARENT_DIR   (env CLOAK_BASE_URL, CLOAK_API_KEY,
CLOAK_DEVICE_TOKEN; runs after the TypeScript check, which leaves calls at 1 per hour)."""
import os
import sys
import time

sys.path.insert(0, sys.argv[1])

from cloak_client import AuthenticatedClient  # noqa: E402
from cloak_client.api.billing import list_wallets  # noqa: E402
from cloak_client.api.calls import turn_credentials  # noqa: E402
from cloak_client.api.invites import create_invite, invite_qr_png  # noqa: E402
from cloak_client.api.users import create_user, create_user_token, find_users  # noqa: E402
from cloak_client.models import CreateInviteRequest, CreateUserRequest  # noqa: E402


def check(ok, what):
    if not ok:
        sys.exit(f"contract check failed: {what}")


base = os.environ["CLOAK_BASE_URL"]
tenant = AuthenticatedClient(base_url=base, token=os.environ["CLOAK_API_KEY"])
device = AuthenticatedClient(base_url=base, token=os.environ["CLOAK_DEVICE_TOKEN"])

external = f"py-{time.time_ns()}"
r = create_user.sync_detailed(client=tenant, body=CreateUserRequest(external_id=external, display_name="Py client"))
check(r.status_code == 201 and r.parsed.external_id == external, "create a user")
user = r.parsed
r = create_user_token.sync_detailed(client=tenant, id=user.id)
check(r.status_code == 201 and r.parsed.token.startswith("cu_"), "mint a user token")
r = create_invite.sync_detailed(client=tenant, body=CreateInviteRequest(inviter_user_id=user.id))
check(r.status_code == 201, f"mint an invite ({r.status_code})")
code = r.parsed.code
r = invite_qr_png.sync_detailed(client=tenant, code=code)
check(r.status_code == 200 and r.content.startswith(b"\x89PNG"), "fetch the invite's PNG")
r = list_wallets.sync_detailed(client=tenant)
check(r.status_code == 200 and isinstance(r.parsed.items, list), "list wallets")
r = find_users.sync_detailed(client=tenant, limit=1)
check(r.status_code == 200 and len(r.parsed.items) == 1, "list users")
r = turn_credentials.sync_detailed(client=device)
retry = r.headers.get("retry-after", "")
check(r.status_code == 429 and retry.isdigit() and int(retry) > 0, f"a 429 with Retry-After ({r.status_code}, {retry!r})")
check(r.parsed is not None and r.parsed.code.value == "rate_limited", "the 429's problem code")
print("python client: ok")
