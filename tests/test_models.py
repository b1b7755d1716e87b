"""Decoding Nylas payloads into the attrs models."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nylas_async import Webhook, WebhookStatus, WebhookWithSecret
from nylas_async._models import ModelError, structure, unstructure

FULL = {
    "id": "UMWjAjMeWQ4D8gYF2moonK4486",
    "description": "Production webhook destination",
    "trigger_types": ["message.created", "notetaker.media"],
    "webhook_url": "https://example.com/webhooks",
    "status": "active",
    "notification_email_addresses": ["jane@example.com"],
    "compressed_delivery": False,
    "created_at": 1234567890,
    "updated_at": 1234567891,
    "status_updated_at": 1234567892,
}


class TestWebhook:
    def test_full_payload(self) -> None:
        """Every documented field decodes, timestamps as aware UTC."""
        w = structure(FULL, Webhook)

        assert w.id == FULL["id"]
        assert w.trigger_types == ("message.created", "notetaker.media")
        assert w.status == WebhookStatus.ACTIVE
        assert w.created_at == dt.datetime(
            2009, 2, 13, 23, 31, 30, tzinfo=dt.UTC
        )
        assert w.compressed_delivery is False

    def test_only_id(self) -> None:
        """A payload with only an id decodes; the rest has defaults."""
        w = structure({"id": "abc"}, Webhook)

        assert w == Webhook(id="abc")

    def test_unknown_keys_ignored(self) -> None:
        """Keys Nylas adds later are ignored, not an error."""
        w = structure({**FULL, "brand_new": {"x": 1}}, Webhook)

        assert w.id == FULL["id"]

    @pytest.mark.parametrize(
        "status",
        [
            pytest.param("active", id="known"),
            pytest.param("quarantined", id="unknown"),
        ],
    )
    def test_status_round_trips(self, status: str) -> None:
        """Known and unknown statuses come back exactly as sent."""
        w = structure({"id": "a", "status": status}, Webhook)

        assert unstructure(w)["status"] == status

    def test_null_trigger_types(self) -> None:
        """A null trigger list decodes as empty rather than failing."""
        w = structure({"id": "a", "trigger_types": None}, Webhook)

        assert w.trigger_types == ()

    def test_round_trip(self) -> None:
        """Unstructuring a decoded payload gives the payload back."""
        assert unstructure(structure(FULL, Webhook)) == FULL

    @given(
        triggers=st.lists(st.text(min_size=1, max_size=40), max_size=8),
        status=st.text(min_size=1, max_size=20),
    )
    def test_any_strings_round_trip(
        self, triggers: list[str], status: str
    ) -> None:
        """Any trigger and status strings survive decode and encode."""
        payload = {"id": "x", "trigger_types": triggers, "status": status}

        again = unstructure(structure(payload, Webhook))

        assert again == payload


class TestWebhookWithSecret:
    def test_secret_hidden_from_repr(self) -> None:
        """The secret is readable but absent from repr and str."""
        w = structure(
            {"id": "a", "webhook_secret": "s3cr3t-value-xyz"},
            WebhookWithSecret,
        )

        assert w.webhook_secret == "s3cr3t-value-xyz"
        assert "s3cr3t" not in repr(w)
        assert "s3cr3t" not in str(w)

    def test_secret_required(self) -> None:
        """A reply without the secret does not decode."""
        with pytest.raises(ModelError) as info:
            structure({"id": "a"}, WebhookWithSecret)

        assert ("data.webhook_secret", "missing") in info.value.problems


class TestProblems:
    def test_every_bad_field_is_listed(self) -> None:
        """All bad fields are reported with their paths, not only one."""
        bad = {
            "trigger_types": "message.created",
            "status": 5,
            "created_at": "yesterday",
            "compressed_delivery": "no",
        }

        with pytest.raises(ModelError) as info:
            structure(bad, Webhook)

        paths = {p for p, _ in info.value.problems}
        assert paths == {
            "data.id",
            "data.trigger_types",
            "data.status",
            "data.created_at",
            "data.compressed_delivery",
        }

    @pytest.mark.parametrize(
        "payload",
        [
            pytest.param([], id="list"),
            pytest.param("x", id="string"),
            pytest.param(None, id="null"),
        ],
    )
    def test_not_an_object(self, payload: object) -> None:
        """A data value that is not an object is named as such."""
        with pytest.raises(ModelError) as info:
            structure(payload, Webhook)

        assert info.value.problems[0][0] == "data"

    def test_wrong_item_type(self) -> None:
        """A non-string trigger type is an error, not coerced."""
        with pytest.raises(ModelError) as info:
            structure({"id": "a", "trigger_types": [1]}, Webhook)

        assert info.value.problems == [
            ("data.trigger_types", "expected strings, item 0 is not")
        ]

    def test_id_not_coerced(self) -> None:
        """An integer id is refused rather than turned into a string."""
        with pytest.raises(ModelError):
            structure({"id": 3}, Webhook)

    def test_list_items_have_indexed_paths(self) -> None:
        """A bad item in a list is named by its index."""
        with pytest.raises(ModelError) as info:
            structure([{"id": "a"}, {"id": 1}], list[Webhook])

        assert info.value.problems[0][0].startswith("data[1]")

    def test_list_payload_must_be_a_list(self) -> None:
        """An object where a list belongs is an error."""
        with pytest.raises(ModelError):
            structure({"id": "a"}, list[Webhook])
