"""The verified-key cache: hits within the TTL, expiry honours revocation, 0 turns it off."""

import time

import pytest
from sqlalchemy import text

from app.auth.cache import KeyCache
from app.auth.models import Role
from app.auth.service import Principal

PRINCIPAL = Principal(key_id=1, name="ehr-1", role=Role.EHR)


def test_a_verified_key_is_remembered_until_the_ttl_passes() -> None:
    cache = KeyCache(0.05)
    assert cache.get("digest") is None
    cache.put("digest", PRINCIPAL)
    assert cache.get("digest") == PRINCIPAL
    time.sleep(0.06)
    assert cache.get("digest") is None  # a revoked key is checked again after the TTL


def test_a_zero_ttl_turns_the_cache_off() -> None:
    cache = KeyCache(0)
    cache.put("digest", PRINCIPAL)
    assert not cache.enabled and cache.get("digest") is None


def test_the_oldest_entries_make_room() -> None:
    cache = KeyCache(60, max_entries=2)
    for digest in ("a", "b", "c"):
        cache.put(digest, PRINCIPAL)
    assert cache.get("a") is None and cache.get("c") == PRINCIPAL


@pytest.mark.data
async def test_revocation_is_honoured_once_the_cache_is_cleared(app, client, keys, encounters):
    app.state.key_cache = KeyCache(30)  # the app's default is off; this tests the cache on
    assert (await client.post("/predict", json=encounters[0], headers=keys["ehr"])).is_success
    with app.state.database.session() as session:
        session.execute(text("UPDATE api_keys SET revoked_at = CURRENT_TIMESTAMP"))
        session.commit()
    app.state.key_cache.clear()  # what the TTL does by itself within 30 s
    response = await client.post("/predict", json=encounters[1], headers=keys["ehr"])
    assert response.status_code == 401


def test_an_answer_older_than_a_revocation_is_not_cached() -> None:
    """A lookup that started before `forget` (the key's revocation) does not re-cache the key."""
    cache = KeyCache(60)
    before = cache.generation  # the request reads this, then asks the database
    cache.forget(PRINCIPAL.key_id)  # meanwhile an admin revokes the key in this process
    cache.put("digest", PRINCIPAL, generation=before)
    assert cache.get("digest") is None
    cache.put("digest", PRINCIPAL, generation=cache.generation)
    assert cache.get("digest") == PRINCIPAL
