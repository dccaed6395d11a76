import pytest

from tests.factories import ApiKeyFactory

LISTS = [
    "/v1/keys",
    "/v1/destinations",
    "/v1/deliveries",
    "/v1/webhook-endpoints",
    "/v1/audit-log",
    "/v1/traces",
]


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize("cursor", ["garbage", "cD0yMDI0", "%C2%93K%C3%96"])
def test_a_tampered_cursor_is_400_naming_it(api, path, cursor):
    response = api.get(f"{path}?cursor={cursor}")
    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "code": "invalid_request",
            "message": "cursor: invalid cursor",
            "details": {"field": "cursor"},
        }
    }


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize("limit", ["0", "-1", "201", "ten", "1.5"])
def test_a_limit_outside_1_to_200_is_400_naming_it(api, path, limit):
    response = api.get(path, {"limit": limit})
    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "code": "invalid_request",
            "message": "limit: must be an integer from 1 to 200",
            "details": {"field": "limit"},
        }
    }


def test_pages_follow_their_next_cursor(api, api_key):
    other = ApiKeyFactory(project=api_key.project)
    first = api.get("/v1/keys", {"limit": "1"}).json()
    second = api.get(first["next"]).json()
    assert [first["results"][0]["id"], second["results"][0]["id"]] == [str(other.pk), str(api_key.pk)]
    assert second["next"] is None
