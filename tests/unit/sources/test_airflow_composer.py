"""Cloud Composer auth: the real google-auth client signs a service account's assertion and
trades it at the key file's token endpoint — here a local server speaking Google's OAuth wire
format, which checks the signature with the account's public key — and Airflow gets the access
token as a bearer; refreshed after a 401, clear errors when Google refuses or is unreachable."""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qs

import httpx
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from monitor.config import AirflowSourceSettings, PrefectSourceSettings
from monitor.sources.airflow import AirflowSource
from monitor.sources.airflow_auth import AirflowAuthError
from monitor.sources.base import SourceUnavailable
from tests.fakes.httpserver import FakeHTTPServer, Recorded, Reply
from tests.unit.sources.test_airflow_source import NOW, FakeAirflow, run, ti

ACCOUNT = "dagwatch@project.iam.gserviceaccount.com"


class GoogleTokenEndpoint(FakeHTTPServer):
    """POST /token with a JWT-bearer grant → an access token, as oauth2.googleapis.com answers."""

    def __init__(self, public_key, airflow: FakeAirflow) -> None:
        super().__init__()
        self.public_key, self.airflow, self.issued = public_key, airflow, 0

    def respond(self, request: Recorded) -> Reply:
        form = parse_qs(request.body.decode())
        if form.get("grant_type") != ["urn:ietf:params:oauth:grant-type:jwt-bearer"]:
            return Reply(400, {"error": "unsupported_grant_type"})
        head, body, signature = form["assertion"][0].split(".")
        try:
            self.public_key.verify(_unb64(signature), f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return Reply(400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."})
        claims = json.loads(_unb64(body))
        assert claims["iss"] == ACCOUNT and claims["aud"] == "https://oauth2.googleapis.com/token" and "cloud-platform" in claims["scope"]
        self.issued += 1
        token = f"ya29.token-{self.issued}"
        self.airflow.valid_tokens.add(token)
        return Reply(200, {"access_token": token, "expires_in": 3600, "token_type": "Bearer"})


def _unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


@pytest.fixture
def key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def airflow():
    return FakeAirflow([run()], [ti("a")])


@pytest.fixture
def google(key, airflow):
    with GoogleTokenEndpoint(key.public_key(), airflow) as server:
        yield server


def key_file(tmp_path, key, token_uri: str) -> str:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    path = tmp_path / "composer-sa.json"
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "project",
                "private_key_id": "k1",
                "private_key": pem,
                "client_email": ACCOUNT,
                "client_id": "1",
                "token_uri": token_uri,
            }
        )
    )
    return str(path)


def composer_source(airflow: FakeAirflow, credentials: str) -> AirflowSource:
    settings = AirflowSourceSettings(kind="airflow", name="composer", url="http://airflow.test", auth={"google": credentials})
    return AirflowSource(settings, transport=httpx.MockTransport(airflow), clock=lambda: NOW)


def bearers(airflow: FakeAirflow) -> set[str]:
    return {r.headers["Authorization"] for r in airflow.requests if "Authorization" in r.headers}


def test_airflow_gets_googles_access_token_fetched_once_and_refreshed_after_a_401(tmp_path, key, airflow, google):
    source = composer_source(airflow, key_file(tmp_path, key, google.url + "/token"))
    [snap] = source.poll(NOW)
    source.poll(NOW)
    assert snap.run_id == "r1" and google.issued == 1 and bearers(airflow) == {"Bearer ya29.token-1"}
    airflow.valid_tokens.clear()  # Composer no longer takes that token
    source.poll(NOW)
    assert google.issued == 2 and "Bearer ya29.token-2" in bearers(airflow)


def test_a_key_google_refuses_is_an_auth_error_without_the_key(tmp_path, airflow, google):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)  # not the account's key
    source = composer_source(airflow, key_file(tmp_path, other, google.url + "/token"))
    with pytest.raises(AirflowAuthError, match="Google refused") as caught:
        source.poll(NOW)
    assert "PRIVATE KEY" not in str(caught.value)


def test_unreachable_token_endpoint_is_source_unavailable(tmp_path, key, airflow, google):
    source = composer_source(airflow, key_file(tmp_path, key, google.refuse_connections() + "/token"))
    with pytest.raises(SourceUnavailable, match="Google's token endpoint"):
        source.poll(NOW)


def test_missing_key_file_says_what_to_set(tmp_path, airflow):
    with pytest.raises(AirflowAuthError, match="GOOGLE_APPLICATION_CREDENTIALS"):
        composer_source(airflow, str(tmp_path / "absent.json")).poll(NOW)


def test_google_auth_is_for_airflow_only_and_alone():
    with pytest.raises(ValueError, match="not google"):
        PrefectSourceSettings(kind="prefect", name="p", url="http://p/api", auth={"google": "default"})
    with pytest.raises(ValueError, match="exactly one"):
        AirflowSourceSettings(kind="airflow", name="a", url="http://a", auth={"google": "default", "token": "t"})
