"""Threading: a message joins the thread of every id it names; its parent is the nearest archived one.

Works incrementally on a session: storing one message touches only the rows its own
Message-ID, the ids it names and its subject's recent messages reach (all indexed), never a
whole list. The result does not depend on arrival order (see listgate/forest.py for the
parent rules); placeholders keep threads whole while a middle message is missing. Rows are
written with Core statements; Thread objects stay ORM objects (listgate/conversations.py).

For batches, call attach once per message inside one transaction: every statement it runs
is keyed by the message's ids, so what earlier calls wrote is seen without a flush.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from listgate import conversations, forest
from listgate.conversations import count_visible, insert_ignore, resolve
from listgate.forest import Keys, choose_parent, is_thread_key, thread_keys
from listgate.models import Message, MessageRef, Thread, ThreadNode

__all__ = ["Draft", "Keys", "Thread", "attach", "choose_parent", "count_visible", "insert_ignore", "is_thread_key",
           "resolve", "thread_keys"]
_NODES = ThreadNode.__table__
_MESSAGES = Message.__table__
_REFS = MessageRef.__table__
_LOOKUP = select(_NODES.c.id, _NODES.c.msgid, _NODES.c.thread_id, _NODES.c.message_pk).where(
    _NODES.c.list_id == bindparam("list_id"), _NODES.c.msgid.in_(bindparam("ids", expanding=True)))
_INSERT_MESSAGE = insert(_MESSAGES).returning(_MESSAGES.c.id)
_INSERT_NODE = insert(_NODES)
_FILL_NODE = update(_NODES).where(_NODES.c.id == bindparam("node"))
_INSERT_REF = insert(_REFS)
_THREAD_OF = select(_MESSAGES.c.thread_id).where(_MESSAGES.c.id == bindparam("pk"))


@dataclass
class Draft:
    """A message being stored: its column values; `id` once inserted."""

    values: dict[str, Any]
    id: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["values"][name]
        except KeyError:
            raise AttributeError(name) from None


def attach(session: Session, draft: Draft, keys: Keys, fallback_days: int, visible: bool = True) -> tuple[Thread, bool]:
    """Insert a new message (draft) into its thread, merging threads it links and re-hanging what it is nearer to.

    Returns the thread and whether it is new; draft.id is the new message's pk.
    """
    conn = session.connection()
    named = keys.named
    nodes = {row.msgid: row for row in conn.execute(
        _LOOKUP, {"list_id": draft.list_id, "ids": [draft.message_id, *(k for k, _ in named)]})}
    archived = {mid: n.message_pk for mid, n in nodes.items() if n.message_pk is not None and mid != draft.message_id}
    # A brand-new message has no descendants yet, so no choice here can make a loop.
    parent_id, parent_pos = forest.header_parent(conn, named, archived)
    by_subject = not named and fallback_days > 0 and bool(draft.subject_norm) and _is_reply(draft)
    thread_ids = list(dict.fromkeys(n.thread_id for n in nodes.values()))
    if by_subject:
        near = forest.nearest_earlier(conn, draft.list_id, draft.subject_norm, draft.date, draft.message_id, fallback_days)
        if near is not None:
            parent_id = near.id
            thread_ids.append(near.thread_id)
    created = not thread_ids
    thread = conversations.new(session, draft) if created else conversations.merge(session, thread_ids)
    draft.values.update(thread_id=thread.id, parent_id=parent_id, pref_parent_id=parent_id, parent_pos=parent_pos,
                        by_subject=by_subject)
    draft.extra["named"] = named
    draft.id = conn.execute(_INSERT_MESSAGE, draft.values).scalar_one()
    _record_nodes(session, draft, named, nodes, thread.id)

    touched = forest.reparent_namers(session, draft.id, draft.message_id, draft.list_id)
    if visible:
        count_visible(session, thread, draft)
    touched |= forest.rehang_by_subject(session, draft, fallback_days)
    if touched:
        for thread_id in {*touched, thread.id}:
            live = resolve(session, thread_id)
            if live is not None:
                conversations.fix_root(session, conversations.get(session, live.id))
        thread = conversations.get(session, conn.execute(_THREAD_OF, {"pk": draft.id}).scalar_one())
    return thread, created


def _is_reply(msg: Any) -> bool:
    from listgate.mail.subjects import is_reply_subject

    return is_reply_subject(msg.subject)


def _record_nodes(session: Session, draft: Draft, named: list[tuple[str, int]], nodes: dict[str, Any],
                  thread_id: int) -> None:
    """The message's own node (new or filled in), its key rows and placeholder nodes."""
    conn = session.connection()
    own = nodes.get(draft.message_id)
    if own is None:
        conn.execute(_INSERT_NODE, {"list_id": draft.list_id, "msgid": draft.message_id, "thread_id": thread_id,
                                    "message_pk": draft.id})
    else:
        conn.execute(_FILL_NODE, {"node": own.id, "message_pk": draft.id, "thread_id": thread_id})
    if not named:
        return
    conn.execute(_INSERT_REF, [{"message_pk": draft.id, "position": pos, "list_id": draft.list_id, "ref": ref,
                                "in_reply_to": irt} for pos, (ref, irt) in enumerate(named)])
    placeholders = [{"list_id": draft.list_id, "msgid": ref, "thread_id": thread_id, "message_pk": None}
                    for ref, _ in named if ref not in nodes]
    if placeholders:
        conn.execute(_INSERT_NODE, placeholders)
