#!/usr/bin/env python3
"""The moto test peer of keywarden: moto in server mode plus a few control endpoints.

Serves moto's own WSGI app on 127.0.0.1:<port> (default 5055) behind a small WSGI middleware.
Every request goes to moto unchanged except those under /_keywarden/, which are answered here
(JSON in, JSON out), and IAM requests that the throttle injection answers itself:

  POST /_keywarden/backdate      set an access key's CreateDate and/or LastUsed
       {"account_id": "123456789012", "access_key_id": "AKIA...",
        "created": "2025-01-01T00:00:00Z",               optional
        "last_used": "2026-10-01T00:00:00Z" | null,      optional; null = never used, absent = as is
        "service": "s3", "region": "us-east-1"}          optional, with last_used
       -> 200 {"account_id", "access_key_id", "user_name", "status", "created",
               "last_used": null | {"date", "service", "region"}}
       -> 404 {"error": ...} when the key is not in that account
  POST /_keywarden/throttle      {"access_key_id": "AKIA...", "every": 3}
       every 3rd IAM request signed with that key id gets HTTP 400 `Throttling: Rate exceeded`
       (the counting starts anew at each call; "every": 0 turns it off)
       -> 200 {"access_key_id", "every"}
  POST /_keywarden/deny          {"access_key_id": "AKIA...", "operations": ["GetCredentialReport"]}
                                 (with "user_name": "ci": only requests naming that user)
       those operations, signed with that key, get HTTP 403 AccessDenied ([] lifts it)
       -> 200 {"access_key_id", "operations"}
  POST /_keywarden/report        {"account_id": "123456789012", "region_and_service": true}
       that account's credential report carries each key's last-use region and service as
       AWS's does (moto's says `not_supported`; false goes back to that)
       -> 200 {"account_id", "region_and_service"}
  GET  /_keywarden/stats?access_key_id=AKIA...
       -> 200 {"calls": {"ListAccessKeys": 12, ...}, "throttled": 4,
               "created_secrets": {"AKIA...new": "<secret>"}}
       (created_secrets: the answers to CreateAccessKey calls signed with that key, so tests
       can look for every secret keywarden was handed)
       (without access_key_id: {"by_access_key": {"AKIA...": {"calls": ..., "throttled": ...}}})
  POST /_keywarden/stats/reset   {"access_key_id": "AKIA..."}  (absent or null: every key)
       -> 200 {"reset": "AKIA..." | null}
  POST /_keywarden/managed-policy {"account_id": "123456789012",
                                  "name": "AWSCompromisedKeyQuarantineV3"}
       makes one AWS managed policy (moto's copy of AWS's own document) attachable in that
       account, as every AWS account has it; moto loads none of them unless told to load all
       (MOTO_IAM_LOAD_MANAGED_POLICIES, some 1,400 per account, too slow for a test per account)
       -> 200 {"account_id", "arn"};  404 when moto does not know the policy
  POST /_keywarden/seed          {"account_id": "123456789012", "users": 5000, "keys": 7500,
                                  "path": "/bench/", "tags": true, "prefix": "bench-user-",
                                  "last_used": true, "same_second": false}
       users with owner/purpose tags ("tags"), their keys with ages spread over 400 days;
       "last_used": 4 keys in 5 get a last use (date after creation, service, region), the
       rest none, and the account's credential report carries each key's last-use region and
       service as AWS's does (moto's says `not_supported`); "same_second": a user's two keys
       are created in the same second, and every third such user's second key is Inactive
       (so the report's slots can only be told apart by status or use)
       -> 200 {"users": n, "keys": m, "keys_older_than_90_days": k,
               "users_with_key_older_than_90_days": u, "keys_used": k, "same_second_pairs": p}
       (the counts "older than 90 days" are of active keys)

`calls` counts every request the key signed, throttled ones included, by operation: the `Action`
form/query parameter of query-protocol services (IAM, STS, Organizations, ...), the part after
the dot of `X-Amz-Target` for JSON-protocol services (Secrets Manager, ...), and
"<service> <METHOD>" (e.g. "s3 GET") for REST services. `throttled` counts the requests that the
injection answered with Throttling.

Accounts: moto scopes a request to the account that owns its access key. Long-term keys of users
created in account A, and STS credentials from AssumeRole into arn:aws:iam::A:role/..., belong to
A; any other key id belongs to the default account 123456789012.

Prints `ready http://127.0.0.1:<port>` on stdout once listening; exits 0 on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import logging
import re
import signal
import sys
import threading
import uuid
from collections import Counter
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs

from moto.iam.models import AccessKey, AccessKeyLastUsed, User, iam_backends
from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server

DEFAULT_ACCOUNT = "123456789012"
# moto keeps IAM per account *and partition*: iam_backends[account]["aws"] is the one that
# requests signed for us-east-1 (any commercial region) reach. Other keys of the BackendDict
# (e.g. "global") would silently create a separate, unused backend.
PARTITION = "aws"

CONTROL_PREFIX = "/_keywarden/"
# `Credential=AKIA.../20260101/us-east-1/iam/aws4_request` in a SigV4 Authorization header.
CREDENTIAL_RE = re.compile(r"Credential=([^/,\s]+)/[^/]*/([^/]*)/([^/]*)/")
ACCOUNT_RE = re.compile(r"^\d{12}$")
CREATED_KEY_RE = re.compile(rb"<AccessKeyId>([^<]+)</AccessKeyId>")
CREATED_SECRET_RE = re.compile(rb"<SecretAccessKey>([^<]+)</SecretAccessKey>")

THROTTLING_BODY = (
    '<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">'
    "<Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error>"
    "<RequestId>{request_id}</RequestId></ErrorResponse>"
)

DENIED_BODY = (
    '<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">'
    "<Error><Type>Sender</Type><Code>AccessDenied</Code>"
    "<Message>User is not authorized to perform: iam:{operation}</Message></Error>"
    "<RequestId>{request_id}</RequestId></ErrorResponse>"
)

StartResponse = Callable[..., Any]


class HttpError(Exception):
    """A control request that cannot be served: answered as {"error": message} with `status`."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


# --- small helpers -------------------------------------------------------------------------


def parse_time(value: Any, field: str) -> dt.datetime:
    """An ISO 8601 timestamp as the naive UTC datetime that moto stores."""
    if not isinstance(value, str):
        raise HttpError(400, f"`{field}` must be an ISO 8601 string")
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise HttpError(400, f"`{field}`: not an ISO 8601 timestamp: {value!r}") from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return parsed


def format_time(value: dt.datetime) -> str:
    return value.replace(microsecond=0).isoformat() + "Z"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def account_of(body: dict[str, Any]) -> str:
    account = body.get("account_id", DEFAULT_ACCOUNT)
    if not isinstance(account, str) or not ACCOUNT_RE.match(account):
        raise HttpError(400, "`account_id` must be a 12-digit string")
    return account


def int_field(body: dict[str, Any], field: str, default: int | None = None) -> int:
    value = body.get(field, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise HttpError(400, f"`{field}` must be a non-negative integer")
    return value


def find_key(account: str, access_key_id: str) -> AccessKey | None:
    """The access key `access_key_id` of `account`, without creating the account's backend."""
    if account not in iam_backends:
        return None
    backend = iam_backends[account][PARTITION]
    key = backend.access_keys.get(access_key_id)
    if key is not None:
        return key
    # Keys made through User.create_access_key directly are only on the user.
    for user in list(backend.users.values()):
        for key in user.access_keys:
            if key.access_key_id == access_key_id:
                return key
    return None


def key_state(account: str, key: AccessKey) -> dict[str, Any]:
    last_used = key.last_used
    return {
        "account_id": account,
        "access_key_id": key.access_key_id,
        "user_name": key.user_name,
        "status": key.status,
        "created": format_time(key.create_date),
        "last_used": None
        if last_used is None
        else {
            # moto documents that last_used may also be set to a bare datetime.
            "date": format_time(getattr(last_used, "timestamp", last_used)),
            "service": getattr(last_used, "service", None),
            "region": getattr(last_used, "region", None),
        },
    }


# --- the credential report as AWS writes it ------------------------------------------------

# Accounts whose credential report carries each key's last-use region and service (AWS's
# does; moto writes `not_supported`). Set by /_keywarden/report and the seed's "last_used".
REPORT_USE_ACCOUNTS: set[str] = set()
_moto_to_csv = User.to_csv


def _to_csv_with_use(self: User) -> str:
    line = _moto_to_csv(self)
    if self.account_id not in REPORT_USE_ACCOUNTS:
        return line
    # The 20 fields after `user,arn` (a user name may hold a comma; what follows never does).
    head, *fields = line.rstrip("\n").rsplit(",", 20)
    # access_key_N_last_used_region / _service, counted from user_creation_time.
    for key, (region, service) in zip(self.access_keys[:2], ((9, 10), (14, 15))):
        used = key.last_used
        if isinstance(used, AccessKeyLastUsed) and used.service and used.region:
            fields[region], fields[service] = used.region, used.service
    return ",".join([head, *fields]) + "\n"


User.to_csv = _to_csv_with_use  # type: ignore[method-assign]


# --- the middleware ------------------------------------------------------------------------


class KeywardenMiddleware:
    """Counts and (optionally) throttles requests per access key; serves /_keywarden/."""

    def __init__(self, app: Callable[[dict[str, Any], StartResponse], Iterable[bytes]]):
        self.app = app
        self.lock = threading.Lock()
        # access key id -> Counter of operation names / number of throttled answers.
        self.calls: dict[str, Counter[str]] = {}
        self.throttled: Counter[str] = Counter()
        # access key id -> (every, IAM requests seen since the throttle was set).
        self.throttles: dict[str, list[int]] = {}
        # access key id -> IAM operations answered with AccessDenied for it.
        self.denied: dict[str, set[str]] = {}
        # access key id -> user name -> operations denied only for requests about that user.
        self.denied_users: dict[str, dict[str, set[str]]] = {}
        # access key id -> {new access key id: its secret}: what CreateAccessKey calls signed
        # with that key answered, so tests can look for the secrets keywarden was given.
        self.created: dict[str, dict[str, str]] = {}

    # WSGI entry point.
    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith(CONTROL_PREFIX):
            return self.control(environ, start_response)

        access_key_id, service = self.signer(environ)
        operation = self.operation(environ, service)
        if access_key_id is None:
            return self.app(environ, start_response)

        throttle = False
        with self.lock:
            self.calls.setdefault(access_key_id, Counter())[operation] += 1
            state = self.throttles.get(access_key_id)
            if state is not None and self.is_iam(environ, service, operation):
                state[1] += 1
                if state[1] % state[0] == 0:
                    throttle = True
                    self.throttled[access_key_id] += 1
        with self.lock:
            deny = operation in self.denied.get(access_key_id, set())
            user = environ.get("keywarden.user_name")
            deny = deny or (
                user is not None
                and operation in self.denied_users.get(access_key_id, {}).get(user, set())
            )
        if deny:
            request_id = str(uuid.uuid4())
            body = DENIED_BODY.format(operation=operation, request_id=request_id).encode()
            start_response(
                "403 Forbidden",
                [
                    ("Content-Type", "text/xml"),
                    ("Content-Length", str(len(body))),
                    ("x-amzn-RequestId", request_id),
                ],
            )
            return [body]
        if throttle:
            request_id = str(uuid.uuid4())
            body = THROTTLING_BODY.format(request_id=request_id).encode()
            start_response(
                "400 Bad Request",
                [
                    ("Content-Type", "text/xml"),
                    ("Content-Length", str(len(body))),
                    ("x-amzn-RequestId", request_id),
                ],
            )
            return [body]
        if operation == "CreateAccessKey":
            return self.remember_created(access_key_id, environ, start_response)
        return self.app(environ, start_response)

    def remember_created(
        self, signer: str, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        """Passes CreateAccessKey to moto and keeps the new key's secret from the answer."""
        result = self.app(environ, start_response)
        try:
            body = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        key = CREATED_KEY_RE.search(body)
        secret = CREATED_SECRET_RE.search(body)
        if key and secret:
            with self.lock:
                self.created.setdefault(signer, {})[key.group(1).decode()] = secret.group(1).decode()
        return [body]

    @staticmethod
    def signer(environ: dict[str, Any]) -> tuple[str | None, str | None]:
        """The access key id and signing service of a SigV4 request (header or presigned URL)."""
        auth = environ.get("HTTP_AUTHORIZATION", "")
        match = CREDENTIAL_RE.search(auth)
        if match:
            return match.group(1), match.group(3).lower()
        query = parse_qs(environ.get("QUERY_STRING", ""))
        credential = query.get("X-Amz-Credential", [""])[0].split("/")
        if len(credential) == 5:
            return credential[0], credential[3].lower()
        return None, None

    @staticmethod
    def operation(environ: dict[str, Any], service: str | None) -> str:
        """The operation a request calls. Buffers a form body and gives moto a fresh copy."""
        target = environ.get("HTTP_X_AMZ_TARGET")
        if target:
            # JSON protocol: `secretsmanager.GetSecretValue`, `DynamoDB_20120810.GetItem`.
            return target.rsplit(".", 1)[-1]
        params = parse_qs(environ.get("QUERY_STRING", ""))
        content_type = environ.get("CONTENT_TYPE", "")
        if content_type.startswith("application/x-www-form-urlencoded"):
            length = environ.get("CONTENT_LENGTH")
            stream = environ["wsgi.input"]
            if length:
                body = stream.read(int(length))
            elif environ.get("wsgi.input_terminated"):
                body = stream.read()  # chunked: the server ends the stream for us
            else:
                body = b""
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            params.update(parse_qs(body.decode("utf-8", "replace")))
        environ["keywarden.user_name"] = params.get("UserName", [None])[0]
        action = params.get("Action")
        if action:
            return action[0]
        return f"{service or 'unknown'} {environ.get('REQUEST_METHOD', 'GET')}"

    @staticmethod
    def is_iam(environ: dict[str, Any], service: str | None, operation: str) -> bool:
        host = environ.get("HTTP_HOST", "")
        is_iam_service = service == "iam" or host.startswith("iam.")
        # A query-protocol operation has a PascalCase name without spaces.
        return is_iam_service and " " not in operation

    # --- /_keywarden/ ----------------------------------------------------------------------

    def control(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        route = environ.get("PATH_INFO", "")[len(CONTROL_PREFIX) :].rstrip("/")
        routes: dict[tuple[str, str], Callable[[dict[str, Any]], Any]] = {
            ("POST", "backdate"): self.backdate,
            ("POST", "throttle"): self.throttle,
            ("POST", "deny"): self.deny,
            ("GET", "stats"): self.stats,
            ("POST", "stats/reset"): self.stats_reset,
            ("POST", "seed"): self.seed,
            ("POST", "report"): self.report,
            ("POST", "managed-policy"): self.managed_policy,
        }
        try:
            # Read the whole body first: the connection is kept alive for the next request.
            raw = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            handler = routes.get((method, route))
            if handler is None:
                known = {name for (_, name) in routes}
                raise HttpError(405 if route in known else 404, f"no {method} /_keywarden/{route}")
            if method == "GET":
                body = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
            else:
                try:
                    body = json.loads(raw or b"{}")
                except ValueError as err:
                    raise HttpError(400, f"the body is not JSON: {err}") from None
                if not isinstance(body, dict):
                    raise HttpError(400, "the body must be a JSON object")
            status, result = 200, handler(body)
        except HttpError as err:
            status, result = err.status, {"error": err.message}
        except Exception as err:  # a bug here must not kill the peer; report it instead
            logging.exception("control request failed")
            status, result = 500, {"error": f"{type(err).__name__}: {err}"}
        payload = json.dumps(result).encode()
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
                  409: "Conflict", 500: "Internal Server Error"}.get(status, "Error")
        start_response(
            f"{status} {reason}",
            [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))],
        )
        return [payload]

    def backdate(self, body: dict[str, Any]) -> dict[str, Any]:
        account = account_of(body)
        access_key_id = body.get("access_key_id")
        if not isinstance(access_key_id, str) or not access_key_id:
            raise HttpError(400, "`access_key_id` is required")
        created = parse_time(body["created"], "created") if "created" in body else None
        if "last_used" in body and body["last_used"] is not None:
            last_used: AccessKeyLastUsed | None = AccessKeyLastUsed(
                timestamp=parse_time(body["last_used"], "last_used"),
                service=str(body.get("service", "iam")),
                region=str(body.get("region", "us-east-1")),
            )
        else:
            last_used = None
        with self.lock:
            key = find_key(account, access_key_id)
            if key is None:
                raise HttpError(404, f"no access key {access_key_id} in account {account}")
            # Both the credential report (User.to_csv) and GetAccessKeyLastUsed read these two
            # attributes of the one AccessKey object that the user and the backend share.
            if created is not None:
                key.create_date = created
            if "last_used" in body:
                key.last_used = last_used
            return key_state(account, key)

    def throttle(self, body: dict[str, Any]) -> dict[str, Any]:
        access_key_id = body.get("access_key_id")
        if not isinstance(access_key_id, str) or not access_key_id:
            raise HttpError(400, "`access_key_id` is required")
        every = int_field(body, "every")
        with self.lock:
            if every == 0:
                self.throttles.pop(access_key_id, None)
            else:
                self.throttles[access_key_id] = [every, 0]
        return {"access_key_id": access_key_id, "every": every}

    def deny(self, body: dict[str, Any]) -> dict[str, Any]:
        """Answers the named operations signed with one key with AccessDenied (HTTP 403)."""
        access_key_id = body.get("access_key_id")
        operations = body.get("operations", [])
        if not isinstance(access_key_id, str) or not access_key_id:
            raise HttpError(400, "`access_key_id` must be a non-empty string")
        if not isinstance(operations, list) or not all(isinstance(it, str) for it in operations):
            raise HttpError(400, "`operations` must be a list of operation names")
        user_name = body.get("user_name")
        if user_name is not None:
            if not isinstance(user_name, str) or not user_name:
                raise HttpError(400, "`user_name` must be a non-empty string")
            with self.lock:
                users = self.denied_users.setdefault(access_key_id, {})
                if operations:
                    users[user_name] = set(operations)
                else:
                    users.pop(user_name, None)
            return {
                "access_key_id": access_key_id,
                "user_name": user_name,
                "operations": sorted(operations),
            }
        with self.lock:
            if operations:
                self.denied[access_key_id] = set(operations)
            else:
                self.denied.pop(access_key_id, None)
        return {"access_key_id": access_key_id, "operations": sorted(operations)}

    def stats_of(self, access_key_id: str) -> dict[str, Any]:
        return {
            "calls": dict(sorted(self.calls.get(access_key_id, Counter()).items())),
            "throttled": self.throttled.get(access_key_id, 0),
            "created_secrets": dict(self.created.get(access_key_id, {})),
        }

    def stats(self, query: dict[str, str]) -> dict[str, Any]:
        with self.lock:
            access_key_id = query.get("access_key_id")
            if access_key_id:
                return self.stats_of(access_key_id)
            keys = sorted(set(self.calls) | set(self.throttled))
            return {"by_access_key": {key: self.stats_of(key) for key in keys}}

    def stats_reset(self, body: dict[str, Any]) -> dict[str, Any]:
        access_key_id = body.get("access_key_id")
        with self.lock:
            if access_key_id is None:
                self.calls.clear()
                self.throttled.clear()
            else:
                self.calls.pop(access_key_id, None)
                self.throttled.pop(access_key_id, None)
        return {"reset": access_key_id}

    def report(self, body: dict[str, Any]) -> dict[str, Any]:
        account = account_of(body)
        on = body.get("region_and_service")
        if not isinstance(on, bool):
            raise HttpError(400, "`region_and_service` must be true or false")
        with self.lock:
            (REPORT_USE_ACCOUNTS.add if on else REPORT_USE_ACCOUNTS.discard)(account)
        return {"account_id": account, "region_and_service": on}

    def managed_policy(self, body: dict[str, Any]) -> dict[str, Any]:
        from moto.iam.aws_managed_policies import aws_managed_policies_data
        from moto.iam.models import AWSManagedPolicy

        account = account_of(body)
        name = body.get("name")
        if not isinstance(name, str) or not name:
            raise HttpError(400, "`name` is required")
        data = json.loads(aws_managed_policies_data).get(name)
        if data is None:
            raise HttpError(404, f"moto does not know the AWS managed policy {name}")
        with self.lock:
            backend = iam_backends[account][PARTITION]
            policy = AWSManagedPolicy.from_data(name, account, backend.region_name, data)
            backend.managed_policies[policy.arn] = policy
        return {"account_id": account, "arn": policy.arn}

    def seed(self, body: dict[str, Any]) -> dict[str, Any]:
        """Creates users and keys straight in the backend: thousands per second, no HTTP."""
        account = account_of(body)
        users = int_field(body, "users", 0)
        keys = int_field(body, "keys", users)
        if keys > 2 * users:
            raise HttpError(400, "`keys` must be at most 2 * `users` (IAM allows 2 keys a user)")
        path = body.get("path", "/")
        prefix = body.get("prefix", "bench-user-")
        if not isinstance(path, str) or not path.startswith("/") or not path.endswith("/"):
            raise HttpError(400, "`path` must start and end with /")
        if not isinstance(prefix, str) or not prefix:
            raise HttpError(400, "`prefix` must be a non-empty string")
        tags = bool(body.get("tags", False))
        last_used = bool(body.get("last_used", False))
        same_second = bool(body.get("same_second", False))
        now = utcnow()
        made_keys = older = users_older = used = pairs = 0
        with self.lock:
            backend = iam_backends[account][PARTITION]
            names = [f"{prefix}{i:05d}" for i in range(users)]
            taken = [name for name in names if name in backend.users]
            if taken:
                raise HttpError(409, f"user {taken[0]} already exists in account {account}")
            if last_used:
                REPORT_USE_ACCOUNTS.add(account)
            for i, name in enumerate(names):
                user_tags = (
                    [
                        {"Key": "owner", "Value": f"team-{i % 20}@example.com"},
                        {"Key": "purpose", "Value": "ci"},
                    ]
                    if tags
                    else None
                )
                user = backend.create_user(
                    region_name="us-east-1", user_name=name, path=path, tags=user_tags
                )
                # The first `keys - users` users get two keys, the rest one (or, with fewer keys
                # than users, the first `keys` users one each and the rest none).
                if keys >= users:
                    count = 2 if i < keys - users else 1
                else:
                    count = 1 if i < keys else 0
                oldest = now
                any_older = False
                pairs += same_second and count == 2
                for slot in range(count):
                    key = backend.create_access_key(name)
                    n = made_keys + slot
                    # Deterministic ages spread over the past 400 days (7 is coprime to 400, so
                    # every age 0..399 occurs equally often), plus a time of day.
                    m = made_keys if same_second else n
                    age = dt.timedelta(days=(m * 7) % 400, seconds=(m * 7919) % 86400)
                    key.create_date = now - age
                    if same_second and slot == 1 and i % 3 == 0:
                        key.status = "Inactive"
                    if last_used and n % 5 != 0:
                        # Used some time after creation: 0..age days ago, never in the future.
                        ago = dt.timedelta(days=(n * 3) % (age.days + 1), seconds=n % 3600)
                        key.last_used = AccessKeyLastUsed(
                            timestamp=max(key.create_date, now - ago),
                            service=("s3", "ec2", "sts", "iam", "lambda")[n % 5],
                            region=("us-east-1", "eu-west-1", "us-west-2")[n % 3],
                        )
                        used += 1
                    oldest = min(oldest, key.create_date)
                    if age > dt.timedelta(days=90) and key.status == "Active":
                        older += 1
                        any_older = True
                made_keys += count
                users_older += any_older
                # A user exists before its keys.
                user.create_date = oldest - dt.timedelta(days=1)
        return {
            "users": users,
            "keys": made_keys,
            "keys_older_than_90_days": older,
            "users_with_key_older_than_90_days": users_older,
            "keys_used": used,
            "same_second_pairs": pairs,
        }


# --- main ----------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, default=5055, help="port on 127.0.0.1 (default 5055)")
    parser.add_argument("--verbose", action="store_true", help="log every request on stderr")
    args = parser.parse_args()

    # werkzeug logs each request on stderr unless its logger is configured; a benchmark makes
    # tens of thousands of requests.
    werkzeug_log = logging.getLogger("werkzeug")
    werkzeug_log.setLevel(logging.INFO if args.verbose else logging.WARNING)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="moto_harness: %(message)s")

    app = KeywardenMiddleware(DomainDispatcherApplication(create_backend_app))
    try:
        server = make_server("127.0.0.1", args.port, app, threaded=True)
    except OSError as err:
        print(f"moto_harness: cannot listen on 127.0.0.1:{args.port}: {err}", file=sys.stderr)
        return 1

    # serve_forever runs in a thread so that the main thread can wait for a signal and then
    # call shutdown(), which blocks until serve_forever has returned.
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, name="moto-harness", daemon=True)
    thread.start()
    print(f"ready http://127.0.0.1:{args.port}", flush=True)
    while not stop.wait(0.2):
        pass
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
