"""An HTML mail made safe to show (nh3): no scripts, no handlers, no remote fetches.

`safe_html()` keeps the formatting a mail needs (tables, fonts, colours, inline
styles of a safe set of properties) and drops everything that runs or reaches
out: script and style elements with their content, on* attributes, forms,
frames, objects, CSS outside the safe properties (no url(), so no background
images), and links other than http(s) and mailto (each opens in a new tab, with
no referrer). Remote images (http, https, protocol-relative) are dropped unless
the reader asked for them, and counted so the page can offer them; images inline
as data: stay. The page serves the result in a sandboxed frame under a CSP that
forbids scripts and, unless asked, remote images: two walls, not one.
"""

from __future__ import annotations

from dataclasses import dataclass

import nh3

TAGS = (set(nh3.ALLOWED_TAGS) | {"font", "center"}) - {"area", "map"}
ATTRIBUTES = {
    **{tag: set(names) for tag, names in nh3.ALLOWED_ATTRIBUTES.items()},
    "*": {"style", "dir", "lang", "title", "align", "valign", "bgcolor", "width", "height"},
    "font": {"color", "face", "size"},
    "td": {"colspan", "rowspan", "align", "valign", "bgcolor", "width", "height"},
    "th": {"colspan", "rowspan", "align", "valign", "bgcolor", "width", "height", "scope"},
    "table": {"align", "bgcolor", "border", "cellpadding", "cellspacing", "width", "summary"},
}
STYLE = {
    "color", "background-color", "font", "font-family", "font-size", "font-style",
    "font-weight", "line-height", "letter-spacing", "text-align", "text-decoration",
    "text-indent", "text-transform", "vertical-align", "white-space", "word-break",
    "margin", "margin-top", "margin-right", "margin-bottom", "margin-left",
    "padding", "padding-top", "padding-right", "padding-bottom", "padding-left",
    "border", "border-top", "border-right", "border-bottom", "border-left",
    "border-color", "border-style", "border-width", "border-collapse", "border-spacing",
    "border-radius", "width", "max-width", "min-width", "height", "max-height",
    "min-height", "display", "list-style-type",
}  # fmt: skip
DROPPED_WHOLE = {"script", "style", "title", "head", "noscript", "template", "textarea"}


@dataclass(frozen=True)
class SafeHtml:
    html: str
    remote_images: int  # remote images left out (or, when allowed, kept)


def safe_html(markup: str, remote_images: bool = False) -> SafeHtml:
    remote = 0

    def keep(tag: str, attribute: str, value: str) -> str | None:
        nonlocal remote
        if tag == "img" and attribute == "src":
            lowered = value.strip().lower()
            if lowered.startswith(("http:", "https:", "//")):
                remote += 1
                return value if remote_images and not lowered.startswith("//") else None
            if lowered.startswith("data:image/"):
                return value
            return None  # cid: and anything else: nothing to load
        if value.strip().lower().startswith("data:"):
            return None  # a data: link is a page made by the sender
        return value

    cleaned = nh3.clean(
        markup,
        tags=TAGS,
        clean_content_tags=DROPPED_WHOLE,
        attributes=ATTRIBUTES,
        attribute_filter=keep,
        url_schemes={"http", "https", "mailto", "data"},
        link_rel="noopener noreferrer",
        set_tag_attribute_values={"a": {"target": "_blank"}},
        filter_style_properties=STYLE,
        strip_comments=True,
    )
    return SafeHtml(cleaned, remote)
