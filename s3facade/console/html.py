"""Escaping by construction: pages are built from `tag()` calls, which escape every text
child and every attribute value unless it is `Html` (markup made by `tag()` itself). No
page interpolates a value into markup by hand, so a key like `<script>` or `"><img` is
shown as text wherever it appears.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from urllib.parse import urlencode

from starlette.responses import HTMLResponse, Response

CSP = (
    "default-src 'self'; script-src 'none'; object-src 'none'; style-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
ROOT = "/-/console"


class Html(str):
    """Markup that is safe to include as it is."""

    __slots__ = ()


Attrs = Mapping[str, "str | int | bool | None"]


def esc(value: object) -> Html:
    if isinstance(value, Html):
        return value
    return Html(html.escape(str(value), quote=True))


def join(parts: Iterable[str | Html | None]) -> Html:
    return Html("".join(esc(p) for p in parts if p is not None))


def tag(name: str, attrs: Attrs | None = None, *children: str | Html | None) -> Html:
    """<name attrs>children</name>; boolean True: a bare attribute, None/False: left out."""
    rendered = []
    for attr, value in (attrs or {}).items():
        if value is None or value is False:
            continue
        rendered.append(f" {attr}" if value is True else f' {attr}="{esc(value)}"')
    opening = f"<{name}{''.join(rendered)}>"
    if name in ("input", "meta", "link", "br"):
        return Html(opening)
    return Html(f"{opening}{join(children)}</{name}>")


def url(path: str, **params: str | None) -> str:
    """A console URL; values go in the query, encoded (keys may hold any character)."""
    given = {k: v for k, v in params.items() if v is not None}
    return f"{ROOT}{path}" + (f"?{urlencode(given)}" if given else "")


def link(href: str, *children: str | Html | None, **attrs: str | None) -> Html:
    return tag("a", {"href": href, **attrs}, *children)


def table(head: Iterable[str], rows: Iterable[Iterable[str | Html | None]], **attrs: str) -> Html:
    header = tag("tr", None, *(tag("th", None, h) for h in head))
    body = [tag("tr", None, *(tag("td", None, cell) for cell in row)) for row in rows]
    return tag("table", dict(attrs), tag("thead", None, header), tag("tbody", None, *body))


def page(title: str, body: Html, user: str | None = None, status: int = 200) -> Response:
    nav: list[Html] = [link(url("/buckets"), "s3facade console", **{"class": "brand"})]
    if user is not None:
        nav.append(tag("span", {"class": "who", "id": "who"}, "signed in as ", user))
        nav.append(
            tag(
                "form",
                {"method": "post", "action": url("/sign-out"), "class": "sign-out"},
                tag("button", {"type": "submit", "id": "sign-out"}, "Sign out"),
            )
        )
    document = join(
        [
            Html("<!DOCTYPE html>"),
            tag(
                "html",
                {"lang": "en"},
                tag(
                    "head",
                    None,
                    tag("meta", {"charset": "utf-8"}),
                    tag("meta", {"name": "viewport", "content": "width=device-width"}),
                    tag("title", None, title, " · s3facade"),
                    tag("link", {"rel": "stylesheet", "href": url("/static/console.css")}),
                ),
                tag(
                    "body",
                    None,
                    tag("header", None, *nav),
                    tag("main", None, tag("h1", None, title), body),
                ),
            ),
        ]
    )
    return HTMLResponse(document, status_code=status, headers=SECURITY_HEADERS)


def error_page(status: int, message: str, user: str | None = None) -> Response:
    titles = {400: "Bad request", 403: "Access denied", 404: "Not found", 429: "Slow down"}
    title = titles.get(status, "Unavailable" if status == 503 else "Error")
    return page(title, tag("p", {"class": "error", "id": "error"}, message), user, status)


def short(digest: str | None, length: int = 12) -> str:
    return "" if not digest else digest[:length] + ("…" if len(digest) > length else "")
