"""What the CDS tests share: a data row as a hook request, FHIR/CDS Hooks validation, and an
EHR's signing keys and JWTs."""

import json
import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.riskassessment import RiskAssessment

from app.features.fhir.example import fhir_from_record

HOOK_URL = "/cds-services/readmission-risk"
ISSUER = "https://ehr.example.org"
PUBLIC_URL = "https://triage.example.org"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP384R1())
SIGNING = {"rsa-1": (RSA_KEY, "RS384"), "ec-1": (EC_KEY, "ES384")}


def jwk(kid: str, key: Any) -> dict[str, Any]:
    """The public JWK of a private key, named `kid`."""
    ecdsa = isinstance(key, ec.EllipticCurvePrivateKey)
    algorithm = jwt.algorithms.ECAlgorithm if ecdsa else jwt.algorithms.RSAAlgorithm
    return {**json.loads(algorithm.to_jwk(key.public_key())), "kid": kid}


def jwks(signing: dict[str, tuple[Any, str]] = SIGNING) -> dict[str, Any]:
    """A JWKS of the public halves of `signing`."""
    return {"keys": [jwk(kid, key) for kid, (key, _) in signing.items()]}


def token(
    path: str = HOOK_URL, *, kid: str = "rsa-1", signing: Any = None, **claims: Any
) -> dict[str, str]:
    """An Authorization header with a JWT for `path` signed with `kid`, claims overridable."""
    now = int(time.time())
    body = {
        "iss": ISSUER,
        "aud": PUBLIC_URL + path,
        "exp": now + 300,
        "iat": now,
        "jti": str(uuid.uuid4()),
        **claims,
    }
    body = {k: v for k, v in body.items() if v is not None}
    key, alg = (signing or SIGNING)[kid]
    signed = jwt.encode(body, key, algorithm=alg, headers={"kid": kid})
    return {"Authorization": f"Bearer {signed}"}


def hook_request(row: dict[str, Any]) -> dict[str, Any]:
    """The converter's CDS Hooks request for one published row."""
    return fhir_from_record(row)


def check_card(card: dict[str, Any]) -> None:
    """Every field CDS Hooks 2.0 requires of a card, within its limits."""
    assert isinstance(card["uuid"], str) and card["uuid"]
    assert isinstance(card["summary"], str) and 0 < len(card["summary"]) < 140
    assert card["indicator"] in ("info", "warning", "critical")
    assert isinstance(card["source"]["label"], str) and card["source"]["label"]


def check_answer(answer: dict[str, Any]) -> RiskAssessment | None:
    """Validate the cards and the RiskAssessment of a hook answer; return the assessment."""
    assert answer["cards"], answer
    for card in answer["cards"]:
        check_card(card)
    actions = answer.get("systemActions") or []
    if not actions:
        return None
    [action] = actions
    assert action["type"] == "create" and action["description"]
    return RiskAssessment.model_validate(action["resource"])


def check_bundle(bundle: dict[str, Any]) -> Bundle:
    """A searchset Bundle valid in R4B."""
    assert bundle["type"] == "searchset"
    return Bundle.model_validate(bundle)
