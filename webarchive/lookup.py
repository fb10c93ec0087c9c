"""Finding what a URL names, with merge redirects followed and private lists enforced."""

from __future__ import annotations

from flask import abort
from sqlalchemy.orm import Session

from listgate.models import Message, Thread
from listgate.threads import resolve
from listgate.states import PostState
from webarchive.access import can_read


def readable_thread(session: Session, thread_id: int) -> Thread:
    """The thread (after merges) if it has visible posts and the visitor may read its list; else 404."""
    thread = resolve(session, thread_id)
    if thread is None or thread.message_count <= 0 or not can_read(session, thread.mailing_list):
        abort(404)
    return thread


def readable_message(session: Session, message_pk: int) -> Message:
    """A visible message the visitor may read, else 404."""
    msg = session.get(Message, message_pk)
    if msg is None or msg.status != PostState.VISIBLE:
        abort(404)
    thread = resolve(session, msg.thread_id)
    if thread is None or not can_read(session, thread.mailing_list):
        abort(404)
    return msg
