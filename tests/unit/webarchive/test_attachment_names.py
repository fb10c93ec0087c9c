"""A real list mail with five attached messages that it leaves unnamed (Mailman's test mail), on
the archive: the thread page lists them by their subjects, and each downloads as that .eml, the
same names however often the mail is archived.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from listgate.models import Attachment
from tests.support.corpora import corpus
from tests.support.factories import MakeList, post


def test_unnamed_attached_messages_show_and_download_under_their_subjects(
    client: FlaskClient, make_list: MakeList, db: sessionmaker[Session]
) -> None:
    raw = corpus("mailman-eml", "eml", "msg_rfc822.eml").read_bytes()
    make_list("dev")
    make_list("other")
    first = post(db, raw)
    post(db, raw, list_name="other")  # the same mail archived again (another list, another site)
    with db() as session:
        stored = session.query(Attachment).order_by(Attachment.id).all()
        by_post = {
            pk: [a.filename for a in stored if a.message_pk == pk]
            for pk in {a.message_pk for a in stored}
        }
    assert len(by_post) == 2 and len(set(map(tuple, by_post.values()))) == 1, by_post
    page = client.get(f"/threads/{first.thread_id}").get_data(as_text=True)
    links = re.findall(r'href="(/attachments/\d+/[^"]+)"[^>]*>([^<]*)<', page)
    shown = [text.strip() for _, text in links]
    for n in range(1, 6):
        assert f"Attached Message {n} Subject.eml" in " ".join(shown), shown
    url = next(u for u, text in links if "Attached Message 2 Subject.eml" in text)
    response = client.get(url)
    assert response.status_code == 200
    assert response.mimetype == "message/rfc822"
    assert b"Subject: Attached Message 2 Subject" in response.data
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith('attachment; filename="Attached_Message_2_Subject.eml"; ')
    assert unquote(disposition.split("filename*=UTF-8''", 1)[1]) == "Attached Message 2 Subject.eml"
