"""Sessions can be revoked: a saved cookie stops working after sign-out, and "sign out
everywhere" ends every session of that address (and only of that address)."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from tests.support.factories import MakeList
from tests.support.web import csrf, sign_in

COOKIE = "listgate_session"
PRIVATE = "/me/subscriptions"  # a page only a signed-in person sees


def signed_in(client: FlaskClient) -> bool:
    """True when the client's cookie still opens a signed-in page."""
    response = client.get(PRIVATE)
    assert response.status_code in (200, 303), response.status_code
    return response.status_code == 200


def replay(app: Flask, cookie: str) -> FlaskClient:
    """A fresh browser holding only a saved copy of a session cookie."""
    thief = app.test_client()
    thief.set_cookie(COOKIE, cookie)
    return thief


def saved_cookie(client: FlaskClient) -> str:
    cookie = client.get_cookie(COOKIE)
    assert cookie is not None
    return cookie.value


def sign_out(client: FlaskClient, **form: str) -> None:
    response = client.post("/signout", data={"csrf_token": csrf(client, PRIVATE), **form})
    assert response.status_code == 303


def test_a_saved_cookie_no_longer_signs_in_after_sign_out(
    app: Flask, client: FlaskClient, db: sessionmaker[Session], make_list: MakeList
) -> None:
    make_list("dev")
    sign_in(client, db, "ann@example.org")
    saved = saved_cookie(client)
    assert signed_in(replay(app, saved))  # the copy works while the session lives
    sign_out(client)
    assert not signed_in(client)
    thief = replay(app, saved)
    assert not signed_in(thief)
    assert "ann@example.org" not in thief.get("/").get_data(as_text=True)


def test_sign_out_everywhere_ends_every_session_of_that_address_only(
    app: Flask, db: sessionmaker[Session], make_list: MakeList
) -> None:
    make_list("dev")
    laptop, phone, other = app.test_client(), app.test_client(), app.test_client()
    sign_in(laptop, db, "ann@example.org")
    sign_in(phone, db, "ann@example.org")
    sign_in(other, db, "bob@example.org")
    phone_cookie = saved_cookie(phone)
    sign_out(laptop)  # one device: the others stay signed in
    assert signed_in(phone) and signed_in(other)
    sign_in(laptop, db, "ann@example.org")
    page = laptop.get(PRIVATE).get_data(as_text=True)
    assert 'name="everywhere" value="yes"' in page  # the button every signed-in page offers
    sign_out(laptop, everywhere="yes")
    assert (
        not signed_in(laptop) and not signed_in(phone) and not signed_in(replay(app, phone_cookie))
    )
    assert signed_in(other)


def test_signing_in_again_gives_a_new_session_id(
    app: Flask, client: FlaskClient, db: sessionmaker[Session], make_list: MakeList
) -> None:
    make_list("dev")
    sign_in(client, db, "ann@example.org")
    first = saved_cookie(client)
    sign_in(client, db, "ann@example.org")
    sign_out(client)
    assert not signed_in(replay(app, first))
