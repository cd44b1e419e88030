"""Feed HTML → plain text: markup never survives, and what a reader would not see is not text."""

from __future__ import annotations

import pytest

from caredesk.connectors.builtin.rss.text import bounded, plain_text


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<p>one</p><p>two<br>three</p>", "one two three"),
        ("<b>Nimbus</b>&nbsp;&amp;&#8220;friends&#x201D;", "Nimbus &“friends”"),  # nbsp is a space
        ("before<script>document.write('<b>Nimbus</b>')</script>after", "beforeafter"),
        ("x<script>never closed Nimbus", "x"),
        ("<style>.nimbus{}</style><noscript>Nimbus</noscript>kept", "kept"),
        ("<svg><script>alert(1)</script><text>Nimbus</text></svg>shown", "shown"),
        ("<!-- Nimbus --><![CDATA[Nimbus]]><?php echo 1 ?>after", "after"),
        ('<img src=x onerror="alert(1)"><a href="javascript:alert(1)">link</a>', "link"),
        ("Why x < y and y > z", "Why x < y and y > z"),
        ("  lots\n\n of\t space  ", "lots of space"),
    ],
)
def test_plain_text(html: str, text: str):
    assert plain_text(html) == text


def test_a_keyword_hidden_in_a_script_is_not_a_mention():
    from caredesk.connectors.listening import KeywordMatcher

    assert KeywordMatcher(["Nimbus"]).match(plain_text("<script>var brand = 'Nimbus'</script>Weather")) == ()


def test_bounded_cuts_at_a_word_with_an_ellipsis():
    assert bounded("short", 10) == "short"
    cut = bounded("word " * 100, 50)
    assert len(cut) <= 50 and cut.endswith("word…")
