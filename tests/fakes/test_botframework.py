"""The fake Bot Framework speaks the real wire format: its tokens verify against the keys its
OpenID metadata publishes (checked here with PyJWT alone, not botbuilder), its token endpoint
is the AAD client-credentials grant, and its connector wants the bearer token it issued and
answers 429 with Retry-After, fails or hangs when told to."""
from __future__ import annotations

import concurrent.futures

import httpx
import jwt
import pytest

from tests.fakes.botframework import ISSUER, SCOPE, FakeBotFramework
from tests.fakes.server import serve

APP_ID = "2f1f5a0e-3c55-4a1b-9d2e-6a1d0f7c9b10"


@pytest.fixture
def fake():
    bf = FakeBotFramework(app_id=APP_ID, password="pw")
    with serve(bf.app()) as url:
        bf.url = url
        yield bf


def test_tokens_verify_against_the_published_keys_and_forgeries_dont(fake):
    metadata = httpx.get(fake.openid_url).json()
    assert metadata["issuer"] == ISSUER
    [key] = httpx.get(metadata["jwks_uri"]).json()["keys"]
    assert key["kty"] == "RSA" and "msteams" in key["endorsements"]
    public = jwt.PyJWK(key).key
    claims = jwt.decode(fake.token("https://smba.example/amer/"), public, algorithms=["RS256"], audience=APP_ID,
                        issuer=ISSUER)
    assert claims["serviceurl"] == "https://smba.example/amer/"
    assert jwt.get_unverified_header(fake.token("x"))["kid"] == key["kid"]
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(fake.token("x", forged=True), public, algorithms=["RS256"], audience=APP_ID)
    with pytest.raises(jwt.ExpiredSignatureError):
        jwt.decode(fake.token("x", expires_in=-600), public, algorithms=["RS256"], audience=APP_ID)


def test_the_connector_wants_an_issued_token_and_can_throttle(fake):
    form = {"grant_type": "client_credentials", "client_id": APP_ID, "client_secret": "wrong", "scope": SCOPE}
    refused = httpx.post(f"{fake.url}/botframework.com/oauth2/v2.0/token", data=form)
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
    granted = httpx.post(f"{fake.url}/botframework.com/oauth2/v2.0/token", data={**form, "client_secret": "pw"})
    token = granted.json()["access_token"]
    url = f"{fake.url}/v3/conversations/a:1/activities"
    assert httpx.post(url, json={"type": "message"}, headers={"Authorization": "Bearer nope"}).status_code == 401
    fake.throttle(1, retry_after=2, type="message")
    auth = {"Authorization": f"Bearer {token}"}
    assert httpx.post(url, json={"type": "typing"}, headers=auth).status_code == 201  # not a message: not throttled
    throttled = httpx.post(url, json={"type": "message"}, headers=auth)
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "2"
    sent = httpx.post(url, json={"type": "message", "text": "hi"}, headers=auth)
    assert sent.status_code == 201
    updated = httpx.put(f"{url}/{sent.json()['id']}", json={"type": "message", "text": "hello"}, headers=auth)
    assert updated.json() == {"id": sent.json()["id"]} and fake.activities[sent.json()["id"]]["text"] == "hello"
    assert [(c.kind, c.status) for c in fake.calls] == [("send", 401), ("send", 201), ("send", 429), ("send", 201),
                                                        ("update", 200)]


def test_the_connector_can_fail_and_hang(fake):
    fake.open_connector = True
    url = f"{fake.url}/v3/conversations/a:1/activities"
    fake.fail(500, kind="send", times=2)
    assert [httpx.post(url, json={"type": "message"}).status_code for _ in range(3)] == [500, 500, 201]
    release = fake.hold(kind="send", type="message")
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        held = pool.submit(httpx.post, url, json={"type": "message", "text": "late"}, timeout=30)
        [call] = fake.wait_for(lambda calls: [c for c in calls if c.kind == "held:send"])
        assert not held.done() and call.activity["text"] == "late"
        release.set()
        assert held.result().status_code == 504
    assert [c.status for c in fake.calls_of("send")] == [500, 500, 201]  # the held call kept nothing
