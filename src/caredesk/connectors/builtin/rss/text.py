"""Plain text from the HTML that feeds carry in titles and summaries.

Feed text is attacker-controlled and its markup is never kept: tags go, the content of script, style and similar
elements goes with them, entities are decoded, and whitespace is collapsed. The result is text to show escaped,
never markup to render.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

# Elements whose content is not text a reader sees.
_INVISIBLE = frozenset({"script", "style", "template", "noscript", "head", "title", "iframe", "object", "svg",
                        "math"})
# Elements that separate words: without a space, "<p>one</p><p>two</p>" would read "onetwo".
_BREAKING = frozenset({"address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "figcaption",
                       "figure", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main",
                       "nav", "ol", "p", "pre", "section", "table", "td", "th", "tr", "ul"})
_SPACES = re.compile(r"\s+")
_MARKUP_HINT = re.compile(r"[<&]")


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _INVISIBLE:
            self._hidden += 1
        elif tag in _BREAKING:
            self.parts.append(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BREAKING:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _INVISIBLE:
            self._hidden = max(0, self._hidden - 1)
        elif tag in _BREAKING:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)


def plain_text(value: str) -> str:
    """``value`` (HTML or plain text) as one line of plain text."""
    if _MARKUP_HINT.search(value):
        extractor = _TextExtractor()
        extractor.feed(value)
        extractor.close()
        value = "".join(extractor.parts)
    return _SPACES.sub(" ", value).strip()


def bounded(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, at a word where one is near, marked with an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit * 0.8:
        cut = cut[:space]
    return cut.rstrip() + "…"
