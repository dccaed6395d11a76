"""End to end against moto's S3 server on loopback: objects PUT through the connector
and `send_all`, signed with SigV4 (moto checks signatures once IAM auth is on), are read
back with boto3."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator

import boto3
import httpx
import pytest
from moto import settings as moto_settings
from moto.core.authorization import ActionAuthenticatorMixin
from moto.server import ThreadedMotoServer

from apps.delivery.sender import send_all
from apps.destinations.connectors.s3 import S3Connector
from tests.unit.connectors import obs_samples as samples

BUCKET = "untrace-lake"
POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
}


@pytest.fixture
def s3_server(monkeypatch) -> Iterator[tuple[str, dict[str, str]]]:
    """An S3 endpoint with a bucket and an IAM user's key allowed to write to it;
    signatures are checked from then on."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    httpx.post(f"{endpoint}/moto-api/reset").raise_for_status()  # moto's state is per process
    setup = {"endpoint_url": endpoint, "region_name": "us-east-1"}
    setup_keys = {"aws_access_key_id": "setup", "aws_secret_access_key": "setup"}
    boto3.client("s3", **setup, **setup_keys).create_bucket(Bucket=BUCKET)
    iam = boto3.client("iam", **setup, **setup_keys)
    iam.create_user(UserName="untrace")
    iam.put_user_policy(UserName="untrace", PolicyName="lake", PolicyDocument=json.dumps(POLICY))
    key = iam.create_access_key(UserName="untrace")["AccessKey"]
    monkeypatch.setattr(moto_settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    monkeypatch.setattr(ActionAuthenticatorMixin, "request_count", 0)
    try:
        yield endpoint, {"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]}
    finally:
        httpx.post(f"{endpoint}/moto-api/reset")
        server.stop()


def reader(endpoint: str, secrets: dict[str, str]):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=secrets["access_key_id"],
        aws_secret_access_key=secrets["secret_access_key"],
    )


def dest(endpoint: str, secrets: dict[str, str], bucket: str = BUCKET):
    config = {"bucket": bucket, "prefix": "untrace/", "region": "us-east-1", "endpoint_url": endpoint}
    return samples.destination("s3", config, secrets)


def test_batch_lands_as_one_gzip_jsonl_object(s3_server):
    endpoint, secrets = s3_server
    connector = S3Connector()
    spans = [*samples.trace(), samples.bare()]
    outcome = send_all(
        connector, connector.build_requests(dest(endpoint, secrets), spans, message_id="msg_1")
    )
    assert outcome.ok, outcome
    client = reader(endpoint, secrets)
    objects = client.list_objects_v2(Bucket=BUCKET)["Contents"]
    assert [o["Key"] for o in objects] == ["untrace/dt=2026-03-04/hour=05/msg_1.jsonl.gz"]
    stored = client.get_object(Bucket=BUCKET, Key=objects[0]["Key"])
    assert stored["ContentType"] == "application/gzip"
    lines = gzip.decompress(stored["Body"].read()).decode().splitlines()
    assert [json.loads(line) for line in lines] == spans


def test_resend_overwrites_and_split_batches_add_objects(s3_server, monkeypatch):
    endpoint, secrets = s3_server
    connector = S3Connector()
    destination = dest(endpoint, secrets)
    for _ in range(2):
        assert send_all(
            connector, connector.build_requests(destination, samples.trace(), message_id="msg_2")
        ).ok
    monkeypatch.setattr(S3Connector, "max_batch_spans", 2)
    assert send_all(connector, connector.build_requests(destination, samples.trace(), message_id="msg_3")).ok
    client = reader(endpoint, secrets)
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket=BUCKET)["Contents"])
    assert [k.rsplit("/", 1)[1] for k in keys] == ["msg_2.jsonl.gz", "msg_3-1.jsonl.gz", "msg_3.jsonl.gz"]
    ids = []
    for name in ("msg_3.jsonl.gz", "msg_3-1.jsonl.gz"):
        body = client.get_object(Bucket=BUCKET, Key=f"untrace/dt=2026-03-04/hour=05/{name}")["Body"].read()
        ids += [json.loads(line)["id"] for line in gzip.decompress(body).splitlines()]
    assert ids == ["span-agent", "span-llm", "span-tool"]


def test_wrong_secret_is_a_permanent_refusal(s3_server):
    endpoint, secrets = s3_server
    connector = S3Connector()
    wrong = {**secrets, "secret_access_key": "not-the-secret"}
    outcome = send_all(
        connector, connector.build_requests(dest(endpoint, wrong), [samples.llm()], message_id="m")
    )
    assert (outcome.ok, outcome.retryable, outcome.status) == (False, False, 403)
    assert "SignatureDoesNotMatch" in outcome.message


def test_missing_bucket_is_a_permanent_refusal(s3_server):
    endpoint, secrets = s3_server
    connector = S3Connector()
    requests = connector.build_requests(
        dest(endpoint, secrets, bucket="no-such-lake"), [samples.llm()], message_id="m"
    )
    outcome = send_all(connector, requests)
    assert (outcome.ok, outcome.retryable, outcome.status) == (False, False, 404)
    assert "NoSuchBucket" in outcome.message
