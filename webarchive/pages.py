"""Reading pages: the lists, a list's threads, a thread, a message, an author, a month."""

from __future__ import annotations

from flask import Blueprint, render_template
from sqlalchemy import select

from listgate.models import MailingList
from webarchive.access import readable_list_ids
from webarchive.context import db, settings

bp = Blueprint("pages", __name__)


@bp.get("/")
def home():  # type: ignore[no-untyped-def]
    """The lists with their counts and last activity."""
    session = db()
    query = select(MailingList).order_by(MailingList.name)
    allowed = readable_list_ids(session)
    if allowed is not None:
        query = query.where(MailingList.id.in_(allowed))
    return render_template("pages/home.html", lists=session.scalars(query).all(), domain=settings().domain)
