#!/usr/bin/env python3
"""Self-test of scripts/moto_harness.py: starts it on a free port and checks every endpoint.

With boto3 against the harness: backdating a key's CreateDate/LastUsed shows in
GetAccessKeyLastUsed, ListAccessKeys and the credential report; "never used" shows as such;
throttle injection gives botocore a `Throttling` ClientError (retries off) and is retried away
(retries on); the per-key stats count query (Action) and JSON (X-Amz-Target) operations; an
AssumeRole into another account scopes IAM to that account; seeding creates users, tags and keys.
Exits 0 when everything holds, else prints what failed and exits 1.

Usage: scripts/moto_harness_selftest.py   (needs moto[server] and boto3)
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
import json
import os
import select
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

HARNESS = Path(__file__).resolve().parent / "moto_harness.py"
ADMIN_KEY = "AKIAIOSFODNN7EXAMPLE"  # not a moto key: moto puts it in the default account
THROTTLED_KEY = "AKIASELFTESTTHROTTLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
CSV_TIME = "%Y-%m-%dT%H:%M:%S+00:00"  # moto's credential report timestamp format

checks = 0


def check(condition: bool, what: str) -> None:
    global checks
    checks += 1
    if not condition:
        raise AssertionError(what)
    print(f"  ok  {what}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def control(url: str, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{url}/_keywarden/{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def client(url: str, service: str, key: str = ADMIN_KEY, secret: str = SECRET,
           token: str | None = None, attempts: int = 1):
    return boto3.client(
        service, endpoint_url=url, region_name="us-east-1",
        aws_access_key_id=key, aws_secret_access_key=secret, aws_session_token=token,
        config=Config(retries={"mode": "standard", "total_max_attempts": attempts}),
    )


def credential_report(iam) -> dict[str, dict[str, str]]:
    iam.generate_credential_report()
    content = iam.get_credential_report()["Content"]
    if isinstance(content, str):  # botocore decodes the base64 blob to bytes
        content = base64.b64decode(content)
    return {row["user"]: row for row in csv.DictReader(io.StringIO(content.decode()))}


def start(port: int) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, str(HARNESS), "--port", str(port)],
                               stdout=subprocess.PIPE, text=True)
    # Wait at most 30 s for the ready line (an empty read means the harness exited).
    ready, _, _ = select.select([process.stdout], [], [], 30)
    line = process.stdout.readline() if ready else ""
    if not line.startswith("ready "):
        process.kill()
        raise SystemExit(f"the harness did not start on port {port}: {line!r}")
    return process


def run(url: str) -> None:
    iam = client(url, "iam")
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)

    print("backdate")
    iam.create_user(UserName="selftest")
    k1 = iam.create_access_key(UserName="selftest")["AccessKey"]["AccessKeyId"]
    k2 = iam.create_access_key(UserName="selftest")["AccessKey"]["AccessKeyId"]
    created, used = now - dt.timedelta(days=120), now - dt.timedelta(days=60)
    status, state = control(url, "POST", "backdate", {
        "account_id": "123456789012", "access_key_id": k1,
        "created": created.isoformat().replace("+00:00", "Z"),
        "last_used": used.isoformat().replace("+00:00", "Z"), "service": "s3", "region": "us-east-1",
    })
    check(status == 200 and state["created"] == created.strftime("%Y-%m-%dT%H:%M:%SZ")
          and state["last_used"] == {"date": used.strftime("%Y-%m-%dT%H:%M:%SZ"),
                                     "service": "s3", "region": "us-east-1"},
          f"backdate answers the new state: {state}")
    status, state = control(url, "POST", "backdate", {"access_key_id": k2, "last_used": None})
    check(status == 200 and state["last_used"] is None, "backdate last_used=null (never used)")

    last = iam.get_access_key_last_used(AccessKeyId=k1)["AccessKeyLastUsed"]
    check(last.get("LastUsedDate") == used and last["ServiceName"] == "s3"
          and last["Region"] == "us-east-1", f"GetAccessKeyLastUsed k1: {last}")
    last = iam.get_access_key_last_used(AccessKeyId=k2)["AccessKeyLastUsed"]
    check("LastUsedDate" not in last and last["ServiceName"] == "N/A" and last["Region"] == "N/A",
          f"GetAccessKeyLastUsed k2 never used: {last}")
    listed = {k["AccessKeyId"]: k for k in iam.list_access_keys(UserName="selftest")["AccessKeyMetadata"]}
    check(listed[k1]["CreateDate"] == created, f"ListAccessKeys CreateDate k1 = {listed[k1]['CreateDate']}")
    check(now - listed[k2]["CreateDate"] < dt.timedelta(minutes=5), "ListAccessKeys k2 untouched")

    row = credential_report(iam)["selftest"]
    check(row["access_key_1_last_rotated"] == created.strftime(CSV_TIME)
          and row["access_key_1_last_used_date"] == used.strftime(CSV_TIME),
          f"credential report key 1: rotated {row['access_key_1_last_rotated']}, "
          f"used {row['access_key_1_last_used_date']}")
    check(row["access_key_2_last_used_date"] == "N/A", "credential report key 2 never used: N/A")
    print(f"      (report key 1 service/region: {row['access_key_1_last_used_service']}/"
          f"{row['access_key_1_last_used_region']})")

    # `last_used` absent leaves it as it is.
    older = created - dt.timedelta(days=30)
    status, state = control(url, "POST", "backdate", {
        "access_key_id": k1, "created": older.strftime("%Y-%m-%dT%H:%M:%S+00:00")})
    check(status == 200 and state["last_used"]["date"] == used.strftime("%Y-%m-%dT%H:%M:%SZ"),
          "backdate without last_used keeps it")
    status, body = control(url, "POST", "backdate", {"access_key_id": "AKIANOSUCHKEY0000000"})
    check(status == 404 and "error" in body, f"backdate of an unknown key: 404 {body}")
    status, body = control(url, "POST", "backdate", {"account_id": "111111111111", "access_key_id": k1})
    check(status == 404, "backdate of a key in another account: 404")

    print("throttle and stats")
    slow = client(url, "iam", key=THROTTLED_KEY)
    control(url, "POST", "stats/reset", {"access_key_id": THROTTLED_KEY})
    status, body = control(url, "POST", "throttle", {"access_key_id": THROTTLED_KEY, "every": 3})
    check(status == 200 and body == {"access_key_id": THROTTLED_KEY, "every": 3}, "throttle set")
    slow.list_users()
    slow.list_access_keys(UserName="selftest")
    try:
        slow.list_users()
        check(False, "the 3rd IAM call is throttled")
    except ClientError as err:
        check(err.response["Error"]["Code"] == "Throttling"
              and err.response["Error"]["Message"] == "Rate exceeded"
              and err.response["ResponseMetadata"]["HTTPStatusCode"] == 400,
              f"3rd IAM call: ClientError {err.response['Error']}")
    # Not IAM: never throttled, but counted (query and JSON protocols).
    sts = client(url, "sts", key=THROTTLED_KEY)
    for _ in range(3):
        sts.get_caller_identity()
    client(url, "secretsmanager", key=THROTTLED_KEY).list_secrets()
    # With retries on, botocore retries the throttled 6th call and succeeds.
    retrying = client(url, "iam", key=THROTTLED_KEY, attempts=3)
    for _ in range(3):
        retrying.list_users()
    status, stats = control(url, "GET", f"stats?access_key_id={THROTTLED_KEY}")
    check(stats == {"calls": {"GetCallerIdentity": 3, "ListAccessKeys": 1, "ListSecrets": 1,
                              "ListUsers": 6}, "throttled": 2, "created_secrets": {}},
          f"stats count every call, throttled included: {stats}")
    control(url, "POST", "throttle", {"access_key_id": THROTTLED_KEY, "every": 0})
    for _ in range(6):
        slow.list_users()
    check(control(url, "GET", f"stats?access_key_id={THROTTLED_KEY}")[1]["throttled"] == 2,
          "every: 0 turns throttling off")
    status, everything = control(url, "GET", "stats")
    check(THROTTLED_KEY in everything["by_access_key"], "stats without a key list every key")
    control(url, "POST", "stats/reset", {"access_key_id": THROTTLED_KEY})
    check(control(url, "GET", f"stats?access_key_id={THROTTLED_KEY}")[1] == {"calls": {}, "throttled": 0, "created_secrets": {}},
          "stats/reset clears the key's counts")
    check(control(url, "GET", "nothing")[0] == 404 and control(url, "GET", "seed")[0] == 405,
          "unknown control routes: 404/405")

    print("accounts")
    creds = client(url, "sts").assume_role(
        RoleArn="arn:aws:iam::111111111111:role/keywarden-audit", RoleSessionName="selftest",
    )["Credentials"]
    other = dict(key=creds["AccessKeyId"], secret=creds["SecretAccessKey"], token=creds["SessionToken"])
    check(client(url, "sts", **other).get_caller_identity()["Account"] == "111111111111",
          "assumed-role credentials are in account 111111111111")
    other_iam = client(url, "iam", **other)
    other_iam.create_user(UserName="other-account-user")
    other_key = other_iam.create_access_key(UserName="other-account-user")["AccessKey"]["AccessKeyId"]
    check([u["UserName"] for u in other_iam.list_users()["Users"]] == ["other-account-user"],
          "the other account sees only its own user")
    check("other-account-user" not in [u["UserName"] for u in iam.list_users()["Users"]],
          "the default account does not see it")
    try:
        iam.get_user(UserName="other-account-user")
        check(False, "GetUser from the default account fails")
    except ClientError as err:
        check(err.response["Error"]["Code"] == "NoSuchEntity", "GetUser from the default account: NoSuchEntity")
    status, state = control(url, "POST", "backdate", {
        "account_id": "111111111111", "access_key_id": other_key, "created": "2025-01-01T00:00:00Z"})
    check(status == 200 and state["created"] == "2025-01-01T00:00:00Z", "backdate in account 111111111111")
    listed = other_iam.list_access_keys(UserName="other-account-user")["AccessKeyMetadata"]
    check(listed[0]["CreateDate"] == dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc),
          "the other account's ListAccessKeys shows it")
    check(control(url, "POST", "backdate", {"access_key_id": other_key})[0] == 404,
          "that key is not in the default account")

    print("seed")
    status, body = control(url, "POST", "seed", {"account_id": "222222222222", "users": 10, "keys": 15,
                                                 "path": "/bench/", "tags": True})
    check(status == 200 and body["users"] == 10 and body["keys"] == 15, f"seed: {body}")
    check(control(url, "POST", "seed", {"account_id": "222222222222", "users": 1})[0] == 409,
          "seeding the same users again: 409")
    check(control(url, "POST", "seed", {"users": 1, "keys": 3})[0] == 400, "more than 2 keys a user: 400")
    creds = client(url, "sts").assume_role(
        RoleArn="arn:aws:iam::222222222222:role/x", RoleSessionName="seed")["Credentials"]
    seeded = client(url, "iam", key=creds["AccessKeyId"], secret=creds["SecretAccessKey"],
                    token=creds["SessionToken"])
    users = seeded.list_users(PathPrefix="/bench/")["Users"]
    check([u["UserName"] for u in users] == [f"bench-user-{i:05d}" for i in range(10)], "seeded user names")
    counts = [len(seeded.list_access_keys(UserName=u["UserName"])["AccessKeyMetadata"]) for u in users]
    check(counts == [2] * 5 + [1] * 5, f"first keys-users users have 2 keys: {counts}")
    tags = {t["Key"]: t["Value"] for t in seeded.list_user_tags(UserName="bench-user-00003")["Tags"]}
    check(tags == {"owner": "team-3@example.com", "purpose": "ci"}, f"seeded tags: {tags}")
    ages = [now - k["CreateDate"] for u in users
            for k in seeded.list_access_keys(UserName=u["UserName"])["AccessKeyMetadata"]]
    old = sum(age > dt.timedelta(days=90) for age in ages)
    check(old == body["keys_older_than_90_days"] and max(ages) < dt.timedelta(days=401),
          f"seeded key ages within 400 days, {old} older than 90 days")

    print("seed with last use, keys made in the same second")
    status, body = control(url, "POST", "seed", {"account_id": "333333333333", "users": 6, "keys": 10,
                                                 "prefix": "twin-", "last_used": True,
                                                 "same_second": True})
    check(status == 200 and body["keys_used"] == 8 and body["same_second_pairs"] == 4,
          f"seed with last use: {body}")
    creds = client(url, "sts").assume_role(
        RoleArn="arn:aws:iam::333333333333:role/x", RoleSessionName="seed")["Credentials"]
    twins = client(url, "iam", key=creds["AccessKeyId"], secret=creds["SecretAccessKey"],
                   token=creds["SessionToken"])
    keys = twins.list_access_keys(UserName="twin-00000")["AccessKeyMetadata"]
    check(len({k["CreateDate"].replace(microsecond=0) for k in keys}) == 1
          and [k["Status"] for k in keys] == ["Active", "Inactive"],
          f"a pair made in the same second, the second key of every third inactive: {keys}")
    rows = credential_report(twins)
    row = rows["twin-00001"]
    used = twins.get_access_key_last_used(
        AccessKeyId=twins.list_access_keys(UserName="twin-00001")["AccessKeyMetadata"][0]["AccessKeyId"]
    )["AccessKeyLastUsed"]
    check(row["access_key_1_last_used_service"] == used["ServiceName"]
          and row["access_key_1_last_used_region"] == used["Region"],
          f"the report carries last-use region and service as AWS's does: {row} / {used}")
    check(credential_report(seeded)["bench-user-00001"]["access_key_1_last_used_region"]
          == "not_supported", "other accounts' reports are moto's own")
    check(control(url, "POST", "report", {"account_id": "333333333333", "region_and_service": False})[0]
          == 200 and credential_report(twins)["twin-00001"]["access_key_1_last_used_service"]
          == "not_supported", "report: region and service switched off again")
    check(control(url, "POST", "report", {"region_and_service": "yes"})[0] == 400,
          "report: a flag that is not a boolean: 400")


def main() -> int:
    port = free_port()
    process = start(port)
    url = f"http://127.0.0.1:{port}"
    try:
        run(url)
    except AssertionError as err:
        print(f"FAIL {err}", file=sys.stderr)
        return 1
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            code = None
    if code != 0:
        print(f"FAIL the harness exits 0 on SIGTERM (got {code})", file=sys.stderr)
        return 1
    print(f"  ok  the harness exits 0 on SIGTERM\nall {checks + 1} checks passed")
    return 0


if __name__ == "__main__":
    os.environ.pop("AWS_ENDPOINT_URL", None)  # endpoint_url is passed explicitly
    sys.exit(main())
