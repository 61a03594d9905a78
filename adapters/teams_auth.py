"""Teams authentication both ways, on botframework-connector.

In: every request to `/api/messages` carries a JWT that botbuilder's
`BotFrameworkAuthentication` validates: issuer https://api.botframework.com, signature by a
key of the channel's OpenID metadata (JWKS, endorsed for the activity's channel), not
expired, audience = our app id, and the `serviceurl` claim equal to the activity's
serviceUrl. We only choose its endpoints (public cloud by default; TEAMS_OPENID_URL and
TEAMS_LOGIN_URL move them, for sovereign clouds and the tests' local fakes).

Out: replies need the bot's own bearer token (OAuth2 client credentials at
`{login}{tenant}/oauth2/v2.0/token`, scope https://api.botframework.com/.default). The
SDK's `MicrosoftAppCredentials` gets it through MSAL, which only accepts https
authorities, asks login.microsoftonline.com for instance discovery, and starts from an
empty cache for every activity (the connector factory makes new credentials per request).
`Credentials` is the SDK's extension point for that (`ServiceClientCredentialsFactory`):
one credential per scope, its token fetched off the event loop and reused until five
minutes before it expires. Secrets never reach a log line or an exception message.

Reuse: botbuilder builds two msrest clients per activity (a connector client and a
user-token client we never use), each spending ~4 ms building its retry policy and opening
its own connections. `Authentication` wraps the SDK's with `Connectors`, one connector
client per service URL and audience (its token still checked, and renewed off the loop,
before each use), and one user-token client. Each connector call is bounded: msrest's
socket timeout (100 s by default) becomes CONNECTOR_TIMEOUT, and urllib3's own retries
(PUTs and DELETEs on 5xx, with backoff) are off: a failed call is retried by the delivery
pipeline (bot/delivery.py), which knows what was already sent.

Checked once: the Bot Framework signs one token per hour and sends it with every activity
of that hour; botbuilder checks it again for each (signature, issuer, audience, expiry,
endorsements, serviceurl), 42% of the door's CPU under a burst (docs/benchmarks.md).
`CheckedTokens` keeps what a token's check established, keyed by the token and everything of
the activity the check reads (channel, serviceUrl, recipient role), for `TRUSTED_FOR`
seconds and never past the token's own expiry (botbuilder accepts 5 minutes beyond it). A
token refused is not kept: it is checked again each time. The signing keys are botbuilder's
cached OpenID metadata, refreshed once a day: a key withdrawn is noticed as late as that
anyway, so five minutes of trusting a token already checked adds nothing to that delay.

Later: the door authenticates a request once; the answer worker that runs the activity,
maybe minutes later and in another process, uses what the door established (`kept` →
`Authentication.restore`), not the JWT again (it may have expired by then).
"""
from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections import OrderedDict
from typing import Any, Callable, Mapping

import httpx
from botbuilder.schema import Activity, CallerIdConstants, ChannelAccount
from botframework.connector.aio import ConnectorClient
from botframework.connector.auth import (AppCredentials, AuthenticateRequestResult, AuthenticationConfiguration,
                                         AuthenticationConstants, BotFrameworkAuthentication,
                                         BotFrameworkAuthenticationFactory, ClaimsIdentity, ConnectorFactory,
                                         MicrosoftAppCredentials, ServiceClientCredentialsFactory, UserTokenClient)
from botframework.connector.auth._connector_factory_impl import USER_AGENT

LOGIN_URL = AuthenticationConstants.TO_CHANNEL_FROM_BOT_LOGIN_URL_PREFIX  # https://login.microsoftonline.com/
OPENID_URL = AuthenticationConstants.TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL
EMULATOR_OPENID_URL = AuthenticationConstants.TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL
SCOPE = AuthenticationConstants.TO_CHANNEL_FROM_BOT_OAUTH_SCOPE  # https://api.botframework.com
MULTI_TENANT = AuthenticationConstants.DEFAULT_CHANNEL_AUTH_TENANT  # botframework.com
REFRESH_MARGIN = 300  # seconds before expiry a token is renewed
TOKEN_TIMEOUT = 10
CONNECTOR_TIMEOUT = 10  # seconds per socket operation of a Bot Connector call (msrest's default: 100)
CLIENTS = 256  # connector clients kept (one per service URL and audience; Teams has a few per region)
TRUSTED_FOR = 300  # seconds a checked token is trusted without a new check (module docstring)
CHECKED = 1024  # checked tokens kept (one per hour per channel and service URL in practice)


class TokenRefused(PermissionError):
    """Raised when the token endpoint refuses the app's credentials (wrong id, secret or tenant),
    or fails (`status` 5xx: worth retrying)."""

    def __init__(self, message: str, status: int = 0):
        super().__init__(message)
        self.status = status


class BotToken(AppCredentials):
    """The bot's bearer token for one scope (msrest calls `signed_session`, which calls
    `get_access_token`, synchronously: `Credentials` makes sure it is fresh beforehand)."""

    def __init__(self, app_id: str, password: str, token_url: str, scope: str):
        super().__init__(app_id=app_id, oauth_scope=scope)
        self._password, self.token_url = password, token_url
        self._token, self._renew_at = "", 0.0
        self._lock = threading.Lock()

    def fresh(self) -> bool:
        return bool(self._token) and time.monotonic() < self._renew_at

    def get_access_token(self, force_refresh: bool = False) -> str:
        with self._lock:
            if force_refresh or not self.fresh():
                self._fetch()
            return self._token

    def _fetch(self) -> None:
        scope = self.oauth_scope if self.oauth_scope.endswith("/.default") else f"{self.oauth_scope}/.default"
        form = {"grant_type": "client_credentials", "client_id": self.microsoft_app_id,
                "client_secret": self._password, "scope": scope}
        started = time.monotonic()
        response = httpx.post(self.token_url, data=form, timeout=TOKEN_TIMEOUT)
        if response.status_code != 200:
            raise TokenRefused(f"{self.token_url} refused the app credentials: HTTP {response.status_code} "
                               f"{_error(response)}", response.status_code)
        data = response.json()
        self._token = str(data["access_token"])
        self._renew_at = started + max(0, int(data.get("expires_in", 3599)) - REFRESH_MARGIN)


def _error(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error", ""))
    except ValueError:
        return ""


class Credentials(ServiceClientCredentialsFactory):
    """Our app id and secret for botbuilder: which tokens are ours, and our outgoing token.
    Without an app id (emulator mode) authentication is disabled, as the SDK defines it."""

    def __init__(self, app_id: str, password: str, login_url: str = LOGIN_URL, tenant: str = ""):
        self.app_id, self._password = app_id, password
        self.token_url = f"{login_url.rstrip('/')}/{tenant or MULTI_TENANT}/oauth2/v2.0/token"
        self._tokens: dict[str, BotToken] = {}
        self._anonymous = MicrosoftAppCredentials.empty()

    async def is_valid_app_id(self, app_id: str) -> bool:
        return bool(self.app_id) and app_id == self.app_id

    async def is_authentication_disabled(self) -> bool:
        return not self.app_id

    async def create_credentials(self, app_id: str, oauth_scope: str, login_endpoint: str,
                                 validate_authority: bool) -> Any:
        if not self.app_id:
            return self._anonymous
        if app_id != self.app_id:
            raise PermissionError("credentials asked for another app id")
        scope = oauth_scope or SCOPE
        token = self._tokens.get(scope)
        if token is None:
            token = self._tokens[scope] = BotToken(self.app_id, self._password, self.token_url, scope)
        if not token.fresh():
            await asyncio.to_thread(token.get_access_token)
        return token


class Connectors(ConnectorFactory):
    """Connector clients for our app: one per service URL and audience, reused."""

    def __init__(self, credentials: Credentials, timeout: float = CONNECTOR_TIMEOUT):
        self.credentials, self.timeout = credentials, timeout
        self._clients: OrderedDict[tuple[str, str, int], ConnectorClient] = OrderedDict()

    async def create(self, service_url: str, audience: str | None = None) -> ConnectorClient:
        scope = audience or SCOPE
        token = await self.credentials.create_credentials(self.credentials.app_id, scope, LOGIN_URL, True)
        key = (service_url, scope, id(token))
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = ConnectorClient(token, base_url=service_url)
            client.config.add_user_agent(USER_AGENT)
            client.config.connection.timeout = self.timeout
            # No retry of urllib3's own, and a 5xx comes back as it is (the session made in the
            # constructor holds this very Retry object: it is changed, not replaced)
            client.config.retry_policy.retries = 0
            client.config.retry_policy.policy.status_forcelist = None
            while len(self._clients) > CLIENTS:
                self._clients.popitem(last=False)
        self._clients.move_to_end(key)
        return client


class CheckedTokens:
    """What the check of a token established, per token and activity addressing, for a while
    (module docstring). `clock` is wall time (a JWT's `exp` is)."""

    def __init__(self, trusted_for: float = TRUSTED_FOR, size: int = CHECKED, clock: Callable[[], float] = time.time):
        self.trusted_for, self.size, self.clock = trusted_for, size, clock
        self._kept: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()

    @staticmethod
    def key(activity: Any, auth_header: str) -> str:
        recipient = getattr(activity, "recipient", None)
        parts = (auth_header, activity.channel_id or "", activity.service_url or "",
                 getattr(recipient, "role", None) or "")
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()

    def get(self, key: str) -> dict[str, Any] | None:
        found = self._kept.get(key)
        if found is None:
            return None
        until, result = found
        if self.clock() >= until:
            del self._kept[key]
            return None
        return result

    def put(self, key: str, result: dict[str, Any]) -> None:
        expires = result["claims"].get("exp")
        until = self.clock() + self.trusted_for
        if isinstance(expires, (int, float)):
            until = min(until, float(expires))
        self._kept[key] = (until, result)
        while len(self._kept) > self.size:
            self._kept.popitem(last=False)


class Authentication(BotFrameworkAuthentication):
    """botbuilder's authentication (`inner`) for our app, its clients reused and its checks of
    a token kept a while (see the module docstring)."""

    def __init__(self, inner: BotFrameworkAuthentication, credentials: Credentials,
                 timeout: float = CONNECTOR_TIMEOUT, checked: CheckedTokens | None = None):
        self.inner, self.connectors = inner, Connectors(credentials, timeout)
        self.checked = checked or CheckedTokens()
        self._user_tokens: UserTokenClient | None = None

    def restore(self, kept_result: dict[str, Any]) -> AuthenticateRequestResult:
        """The result of an authentication made earlier (`kept`), to run its activity now."""
        result = AuthenticateRequestResult()
        result.claims_identity = ClaimsIdentity(dict(kept_result["claims"]), True,
                                                kept_result.get("type") or None)
        result.audience = kept_result.get("audience") or None
        result.caller_id = kept_result.get("caller_id") or None
        result.connector_factory = self.connectors
        return result

    async def authenticate_request(self, activity: Any, auth_header: str) -> AuthenticateRequestResult:
        key = CheckedTokens.key(activity, auth_header) if auth_header else ""
        found = self.checked.get(key) if key else None
        if found is not None:
            return self.restore(found)
        result = await self.inner.authenticate_request(activity, auth_header)  # raises when refused
        result.connector_factory = self.connectors
        if key and result.claims_identity is not None and result.claims_identity.is_authenticated:
            self.checked.put(key, kept(result))
        return result

    async def authenticate_streaming_request(self, auth_header: str, channel_id_header: str
                                             ) -> AuthenticateRequestResult:
        return await self.inner.authenticate_streaming_request(auth_header, channel_id_header)

    def create_connector_factory(self, claims_identity: ClaimsIdentity) -> ConnectorFactory:
        return self.connectors

    async def create_user_token_client(self, claims_identity: ClaimsIdentity) -> UserTokenClient:
        if self._user_tokens is None:
            self._user_tokens = await self.inner.create_user_token_client(claims_identity)
        return self._user_tokens

    def create_bot_framework_client(self) -> Any:
        return self.inner.create_bot_framework_client()

    def get_originating_audience(self) -> str:
        return self.inner.get_originating_audience()

    async def authenticate_channel_request(self, auth_header: str) -> ClaimsIdentity:
        return await self.inner.authenticate_channel_request(auth_header)


def addressing(data: Mapping[str, Any]) -> Activity:
    """What botbuilder's authentication reads of an activity: its channel and serviceUrl (the
    JWT is checked against them), and without a JWT (emulator), whether it is for a skill."""
    def text(value: Any) -> str | None:
        return value if isinstance(value, str) else None
    recipient = data.get("recipient") if isinstance(data.get("recipient"), dict) else {}
    return Activity(channel_id=text(data.get("channelId")), service_url=text(data.get("serviceUrl")),
                    recipient=ChannelAccount(role=text(recipient.get("role"))))


def kept(result: AuthenticateRequestResult) -> dict[str, Any]:
    """What a request's authentication established, as JSON (for `Authentication.restore`)."""
    identity = result.claims_identity
    return {"claims": dict(identity.claims or {}), "type": identity.authentication_type or "",
            "audience": result.audience or "", "caller_id": result.caller_id or ""}


def authentication(credentials: Credentials, *, login_url: str = LOGIN_URL, openid_url: str = OPENID_URL,
                   emulator_openid_url: str = EMULATOR_OPENID_URL, tenant: str = "",
                   timeout: float = CONNECTOR_TIMEOUT) -> Authentication:
    """botbuilder's request authentication for the public cloud, with these endpoints."""
    return Authentication(BotFrameworkAuthenticationFactory.create(
        channel_service="", validate_authority=True, to_channel_from_bot_login_url=login_url,
        to_channel_from_bot_oauth_scope=SCOPE, to_bot_from_channel_token_issuer=AuthenticationConstants.
        TO_BOT_FROM_CHANNEL_TOKEN_ISSUER, oauth_url=AuthenticationConstants.OAUTH_URL,
        to_bot_from_channel_open_id_metadata_url=openid_url,
        to_bot_from_emulator_open_id_metadata_url=emulator_openid_url,
        caller_id=CallerIdConstants.public_azure_channel, credential_factory=credentials,
        auth_configuration=AuthenticationConfiguration(tenant_id=tenant or None)), credentials, timeout)
