"""Threading cases sent over real SMTP, read back through the web archive's JSON API."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from tests.support.gateway import Env, mail, settle

pytestmark = pytest.mark.integration


@pytest.fixture
def api(env: Env) -> FlaskClient:
    from webarchive import create_app

    return create_app(env.settings).test_client()


def post(env: Env, msgid: str, refs: str = "", irt: str = "", subject: str = "Plan") -> None:
    extra = (f"References: {refs}\r\n" if refs else "") + (f"In-Reply-To: {irt}\r\n" if irt else "")
    with env.smtp() as c:
        assert (
            c.sendmail(
                "ann@example.org",
                ["dev@lists.test"],
                mail(subject=subject, msgid=msgid, extra=extra),
            )
            == {}
        )
    settle(env.db)  # the API reads the archive


def tree(api: FlaskClient, msgid: str) -> dict[str, str | None]:
    """message -> parent, as the API shows the thread of msgid."""
    thread_id = api.get(f"/api/messages/{msgid}").get_json()["thread_id"]
    body = api.get(f"/api/threads/{thread_id}").get_json()
    return {m["message_id"]: m["parent_message_id"] for m in body["messages"]}


def test_replies_before_their_parents_and_a_missing_middle(env: Env, api: FlaskClient) -> None:
    post(env, "c@x.test", refs="<a@x.test> <b@x.test>", subject="Re: Plan")  # grandchild first
    post(env, "a@x.test")
    assert tree(api, "a@x.test") == {
        "a@x.test": None,
        "c@x.test": "a@x.test",
    }  # b is missing: c hangs under a, same thread
    post(env, "b@x.test", refs="<a@x.test>", subject="Re: Plan")
    assert tree(api, "c@x.test") == {
        "a@x.test": None,
        "b@x.test": "a@x.test",
        "c@x.test": "b@x.test",
    }


def test_merged_threads_and_the_absorbed_link(env: Env, api: FlaskClient) -> None:
    post(env, "x@x.test", subject="One")
    post(env, "y@x.test", refs="<ghost@x>", subject="Two")
    old = api.get("/api/messages/y@x.test").get_json()["thread_id"]
    post(env, "z@x.test", refs="<x@x.test> <ghost@x>", subject="Re: both")
    assert set(tree(api, "y@x.test")) == {"x@x.test", "y@x.test", "z@x.test"}
    resp = api.get(f"/api/threads/{old}")
    if resp.status_code in (301, 302, 308):  # the absorbed thread's link redirects to the survivor
        resp = api.get(resp.headers["Location"])
    assert resp.status_code == 200 and {m["message_id"] for m in resp.get_json()["messages"]} == {
        "x@x.test",
        "y@x.test",
        "z@x.test",
    }


def test_subject_only_replies_join_by_subject(env: Env, api: FlaskClient) -> None:
    post(env, "s1@x", subject="Release date")
    post(env, "s2@x", subject="[dev] RE: Release date")
    assert tree(api, "s2@x") == {"s1@x": None, "s2@x": "s1@x"}
