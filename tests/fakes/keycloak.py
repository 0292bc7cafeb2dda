"""A small fake Keycloak: one realm's JWKS over real HTTP on loopback, and a token minter.

The registry's OIDC authentication talks to it exactly as it talks to Keycloak: PyJWT's
``PyJWKClient`` fetches ``/realms/<realm>/protocol/openid-connect/certs`` over HTTP. The
key set has Keycloak's shape — an RS256 signing key (``use: sig``) next to an RSA-OAEP
encryption key (``use: enc``) that a verifier must skip — and tokens carry the claims of
a Keycloak access token.

For tests the fake can rotate keys (``rotate``), drop one (``retire``), go down
(``down("refused" | "error" | "garbage")``) and counts the key-set requests it served.

    with FakeKeycloak() as idp:
        token = idp.mint(username="alice")
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import itertools
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from jwt.algorithms import RSAAlgorithm

DEFAULT_REALM = "agents"
DEFAULT_AUDIENCE = "agent-registry"
DEFAULT_CLIENT_ID = "agent-portal"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_uint(number: int) -> str:
    return b64url(number.to_bytes((number.bit_length() + 7) // 8, "big"))


KEY_SLOTS = 16


@functools.lru_cache(maxsize=KEY_SLOTS)
def _rsa_key(slot: int) -> RSAPrivateKey:
    """RSA keys are slow to make, so the test session reuses a few: any KEY_SLOTS keys
    generated one after the other (all the keys of one test) are distinct."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


_slots = itertools.count()


@dataclass(frozen=True)
class SigningKey:
    """An RSA key pair as Keycloak's realm key provider holds it."""

    kid: str
    private_key: RSAPrivateKey
    use: str = "sig"
    alg: str = "RS256"

    @classmethod
    def generate(cls, *, use: str = "sig", alg: str = "RS256") -> SigningKey:
        slot = next(_slots) % KEY_SLOTS
        return cls(kid=b64url(uuid.uuid4().bytes), private_key=_rsa_key(slot), use=use, alg=alg)

    def public_jwk(self) -> dict[str, str]:
        numbers = self.private_key.public_key().public_numbers()
        return {
            "kid": self.kid,
            "kty": "RSA",
            "alg": self.alg,
            "use": self.use,
            "n": _b64url_uint(numbers.n),
            "e": _b64url_uint(numbers.e),
        }

    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


@dataclass
class FakeKeycloak:
    realm: str = DEFAULT_REALM
    audience: str = DEFAULT_AUDIENCE
    client_id: str = DEFAULT_CLIENT_ID
    keys: list[SigningKey] = field(default_factory=list)
    mode: str = "up"  # up | refused | error | garbage
    jwks_requests: int = 0

    def __post_init__(self) -> None:
        if not self.keys:
            self.keys = [
                SigningKey.generate(),
                SigningKey.generate(use="enc", alg="RSA-OAEP"),
            ]
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # --- the server ---------------------------------------------------------------

    def start(self) -> FakeKeycloak:
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler_class())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeKeycloak:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}/realms/{self.realm}"

    @property
    def jwks_url(self) -> str:
        return f"{self.issuer}/protocol/openid-connect/certs"

    def jwks(self) -> dict[str, Any]:
        return {"keys": [key.public_jwk() for key in self.keys]}

    def down(self, mode: str = "refused") -> None:
        """``refused``: nothing listens on the port; ``error``: 500; ``garbage``: not JSON."""
        if mode not in {"refused", "error", "garbage"}:
            raise ValueError(f"unknown mode {mode!r}")
        self.mode = mode
        if mode == "refused":
            self.stop()

    def up(self) -> None:
        if self._server is None:
            self.start()
        self.mode = "up"

    # --- keys ---------------------------------------------------------------------

    @property
    def signing_key(self) -> SigningKey:
        """The key new tokens are signed with: the newest signing key, as Keycloak does."""
        return [key for key in self.keys if key.use == "sig"][-1]

    def rotate(self) -> SigningKey:
        """Add a new signing key and sign with it from now on; the old one stays published."""
        key = SigningKey.generate()
        self.keys.append(key)
        return key

    def retire(self, key: SigningKey) -> None:
        """Stop publishing ``key`` (what an admin does with a compromised key)."""
        self.keys = [k for k in self.keys if k.kid != key.kid]

    # --- tokens -------------------------------------------------------------------

    def claims(
        self,
        *,
        sub: str | None = None,
        username: str = "alice",
        email: str | None = None,
        expires_in: int = 300,
        **overrides: Any,
    ) -> dict[str, Any]:
        """The payload of a Keycloak access token for ``username``."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "exp": now + expires_in,
            "iat": now,
            "auth_time": now,
            "jti": str(uuid.uuid4()),
            "iss": self.issuer,
            "aud": self.audience,
            "sub": sub or str(uuid.uuid4()),
            "typ": "Bearer",
            "azp": self.client_id,
            "sid": str(uuid.uuid4()),
            "acr": "1",
            "allowed-origins": ["http://127.0.0.1"],
            "realm_access": {"roles": ["default-roles-" + self.realm, "offline_access"]},
            "scope": "openid profile email",
            "email_verified": True,
            "name": username.title(),
            "preferred_username": username,
            "given_name": username.title(),
            "email": email if email is not None else f"{username}@example.com",
        }
        claims.update(overrides)
        return claims

    def mint(self, *, key: SigningKey | None = None, kid: str | None = None, **claims: Any) -> str:
        """An RS256 access token signed by ``key`` (default: the realm's current key)."""
        key = key or self.signing_key
        return jwt.encode(
            self.claims(**claims),
            key.private_key,
            algorithm="RS256",
            headers={"kid": kid or key.kid, "typ": "JWT"},
        )

    # --- the HTTP handler ---------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        idp = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                realm_path = f"/realms/{idp.realm}"
                if self.path == f"{realm_path}/protocol/openid-connect/certs":
                    with idp._lock:
                        idp.jwks_requests += 1
                    if idp.mode == "error":
                        self._send(500, b'{"error":"unknown_error"}')
                    elif idp.mode == "garbage":
                        self._send(200, b"<html>Bad gateway</html>", "text/html")
                    else:
                        self._send(200, json.dumps(idp.jwks()).encode())
                elif self.path == f"{realm_path}/.well-known/openid-configuration":
                    document = {"issuer": idp.issuer, "jwks_uri": idp.jwks_url}
                    self._send(200, json.dumps(document).encode())
                else:
                    self._send(404, b'{"error":"Realm does not exist"}')

            def _send(self, status: int, body: bytes, content_type="application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # quiet test output
                pass

        return Handler


# --- forgeries: tokens an attacker could make without the realm's private key ---------


def unsigned_token(claims: dict[str, Any], *, kid: str | None = None) -> str:
    """``alg: none`` — a token with no signature at all."""
    header = {"alg": "none", "typ": "JWT", **({"kid": kid} if kid else {})}
    return f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}."


def hs256_token(claims: dict[str, Any], *, secret: bytes, kid: str | None = None) -> str:
    """HS256 signed with ``secret`` — with the realm's public key, the classic confusion attack."""
    header = {"alg": "HS256", "typ": "JWT", **({"kid": kid} if kid else {})}
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    signature = hmac.new(secret, signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def token_with_header(claims: dict[str, Any], key: SigningKey, header: dict[str, Any]) -> str:
    """Signed properly with ``key`` under a hand-made header (PyJWT won't write odd headers)."""
    header = {"alg": "RS256", "typ": "JWT", **header}
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    signature = RSAAlgorithm(RSAAlgorithm.SHA256).sign(
        signing_input.encode("ascii"), key.private_key
    )
    return f"{signing_input}.{b64url(signature)}"
