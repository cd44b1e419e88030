"""Finds, in a page's HTML, what a strict Content-Security-Policy (``script-src 'self'; style-src 'self'``) blocks:
``style`` attributes and elements, inline scripts, event-handler attributes, ``javascript:`` URLs, ``hx-on``."""

from __future__ import annotations

from html.parser import HTMLParser


class InlineFinder(HTMLParser):
    """Collects every construct a strict CSP blocks, with the tag it sits on."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self.elements = 0
        self._in_script = False
        self._script_text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements += 1
        names = {name for name, _ in attrs}
        for name, value in attrs:
            if name == "style":
                self.found.append(f"<{tag} style={value!r}>")
            elif name.startswith("on"):
                self.found.append(f"<{tag} {name}=…> (event handler)")
            elif name.startswith(("hx-on", "data-hx-on")):
                self.found.append(f"<{tag} {name}=…> (htmx inline handler)")
            elif name in ("href", "src", "action", "formaction") and (value or "").strip().lower().startswith(
                    "javascript:"):
                self.found.append(f"<{tag} {name}=javascript:…>")
        if tag == "style":
            self.found.append("<style> element")
        if tag == "script" and "src" not in names:
            kind = (dict(attrs).get("type") or "").strip().lower()
            # A data block (json_script's application/json) is never executed, so the policy does not apply.
            if kind in ("", "module", "text/javascript", "application/javascript"):
                self._in_script = True
                self._script_text = []

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self._script_text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._in_script:
            self._in_script = False
            self.found.append(f"inline <script>: {''.join(self._script_text)[:60]!r}")


def blocked(html: str) -> list[str]:
    finder = InlineFinder()
    finder.feed(html)
    finder.close()
    assert finder.elements > 0, "nothing was parsed"
    return finder.found
