"""Bodies told apart as a reader sees them: top-posted
earlier mails folded, prose and code in their own fonts.
"""

from __future__ import annotations

from webarchive.rendering.bodies import render_text
from webarchive.rendering.shapes import blocks, fixed_width, paragraphs

OUTLOOK = """Yes, ship it on Monday.

Regards,
Dana

-----Original Message-----
From: Alice <alice@example.org>
Sent: Tuesday, March 3, 2026 2:05 PM
To: dev@lists.test
Subject: Release date

When do we ship?
--\x20
Alice
"""
OUTLOOK_HEADERS_ONLY = """Agreed.

From: Alice Example <alice@example.org>
Sent: Tuesday, March 3, 2026 2:05 PM
To: dev@lists.test
Subject: Release date

When do we ship?
"""
GMAIL = """Thanks, that fixed it.

On Tue, Mar 3, 2026 at 2:05 PM Alice Example <alice@example.org>
wrote:

> Try a clean build.
> It worked here.
"""
INTERLEAVED = """On Tue, Mar 3, 2026 Alice wrote:
> first point
my answer
> second point
another answer
"""
PATCH = """Here is the fix, please review.

diff --git a/x.c b/x.c
--- a/x.c
+++ b/x.c
@@ -1,3 +1,3 @@
 int main(void)

-  return 1;
+  return 0;
"""


def test_outlook_original_message_block_is_one_folded_earlier_mail_with_the_signature_inside() -> (
    None
):
    kinds = [b.kind for b in blocks(OUTLOOK)]
    assert kinds == ["text", "earlier"]
    html = render_text(OUTLOOK)
    assert '<details class="quote earlier"><summary>Earlier message, 9 lines</summary>' in html
    assert html.index("Yes, ship it") < html.index("<details")


def test_outlook_header_block_without_separator_and_gmail_trailing_quote_fold_too() -> None:
    assert [b.kind for b in blocks(OUTLOOK_HEADERS_ONLY)] == ["text", "earlier"]
    gmail = blocks(GMAIL)
    assert [b.kind for b in gmail] == ["text", "earlier"]
    assert gmail[1].lines[0].startswith("On Tue, Mar 3")


def test_interleaved_replies_are_not_folded_as_an_earlier_mail() -> None:
    assert "earlier" not in [b.kind for b in blocks(INTERLEAVED)]
    assert "earlier" not in [b.kind for b in blocks("> only a forward\n> of a quote\n")]


def test_prose_and_a_patch_in_one_post_get_different_fonts() -> None:
    runs = paragraphs(tuple(PATCH.rstrip().split("\n")))
    assert [mono for mono, _ in runs] == [False, True]
    html = render_text(PATCH)
    assert (
        html.startswith('<div class="prose">Here is the fix')
        and '<div class="mono">diff --git' in html
    )


def test_indented_code_tables_and_drawings_are_fixed_width_prose_is_not() -> None:
    assert fixed_width(["    make -j2", "\tmake install"])
    assert fixed_width(["name      size   date", "foo.c     1200   2026-03-01"])
    assert fixed_width(["+------+------+", "| a    | b    |", "+------+------+"])
    assert not fixed_width(["I tried the new release and it fails.", "Any idea why?"])
    assert not fixed_width(["    just one indented line", "and then prose"])
