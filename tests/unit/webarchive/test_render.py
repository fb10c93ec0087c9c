"""Plain-text bodies shown faithfully: flowed text joined,
quotes folded, signatures dimmed, nothing harvestable.
"""

from __future__ import annotations

from webarchive.rendering.bodies import (
    blocks,
    display_name,
    mask_addresses,
    render_html,
    render_text,
    typed_paragraphs,
    unflow,
)


def test_flowed_soft_breaks_are_joined_and_hard_breaks_kept() -> None:
    text = "This is a long \nparagraph.\nNew line.\n> quoted soft \n> continued\n"
    assert unflow(text) == "This is a long paragraph.\nNew line.\n> quoted soft continued\n"


def test_flowed_space_stuffing_is_removed() -> None:
    assert unflow(" From here\n") == "From here\n"


def test_blocks_separate_quotes_and_signature() -> None:
    kinds = [b.kind for b in blocks("Hi\n> a\n> b\nreply\n-- \nAlice\nCorp")]
    assert kinds == ["text", "quote", "text", "sig"]


def test_long_quotes_are_folded_short_ones_dimmed() -> None:
    html = render_text("x\n> 1\n> 2\n> 3\n> 4\ny\n> short\n")
    assert '<details class="quote"><summary>4 quoted lines</summary>' in html
    assert '<div class="quote"><div class="prose">&gt; short</div></div>' in html


def test_signature_is_marked_for_dimming() -> None:
    assert '<div class="sig">-- \nAlice</div>' in render_text("Body\n-- \nAlice\n")


def test_text_is_escaped_and_urls_linked() -> None:
    html = render_text("<script>alert(1)</script> see https://example.org/a?b=1&c=2.\n")
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert (
        '<a href="https://example.org/a?b=1&amp;c=2" rel="nofollow ugc noopener noreferrer">'
        in html
    )


def test_addresses_are_masked_for_anonymous_readers() -> None:
    assert mask_addresses("write to bob.smith@example.co.uk now") == "write to bob.smith@… now"
    assert "example.com" not in render_text("alice@example.com wrote:\n")
    assert "alice@example.com" in render_text("alice@example.com wrote:\n", anonymous=False)
    assert display_name("carol@example.net") == "carol@…"


def test_html_parts_are_sanitised() -> None:
    html = render_html(
        '<p onclick="x()">Hi<script>alert(1)</script><img src="http://t/x.png" onerror="alert(2)">'
        '<a href="javascript:alert(3)">link</a><style>p{}</style></p>'
    )
    for bad in ("<script", "onclick", "onerror", "<img", "javascript:", "<style"):
        assert bad not in html
    assert "<p>Hi" in html


def test_blank_lines_between_blocks_survive() -> None:
    html = render_text("Para one.\n\n> quote\n")
    assert html.startswith('<div class="prose">Para one.\n\n</div>')


def test_typed_text_keeps_its_paragraphs_and_line_breaks_and_no_markup() -> None:
    typed = "One\r\ntwo\r\n\r\n \n\n\nThree <script>x</script> & <b>b</b>\n\n"
    assert typed_paragraphs(typed) == (
        "<p>One<br>\ntwo</p>\n"
        "<p>Three &lt;script&gt;x&lt;/script&gt; &amp; &lt;b&gt;b&lt;/b&gt;</p>"
    )
    assert typed_paragraphs("") == "" and typed_paragraphs("\n \n") == ""
