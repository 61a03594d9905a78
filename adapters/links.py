"""Which links in an answer may be clicked, for every channel's renderer.

An answer is written by a model from documents anyone may have edited, so a link in it can
point anywhere. Only these open: links to the profile's `allowed_domains` (the host, or a
subdomain of it), to the sources the reply cites, and to the profile's contact page. Every other link is shown as
plain text, its label then its URL defanged (`https[:]//evil[.]example/x`, which no chat
client turns back into a link), and a bare URL in the text is defanged the same way, since
Slack, Telegram and Teams link bare URLs themselves. Images are never loaded: a renderer
shows an image's alt text, or a plain link to it when the link is allowed.

`allows` is strict on purpose: http(s) only; no userinfo (`https://allowed.example@evil.example`
goes to evil.example); a host of ASCII letters, digits, hyphens and dots only (no percent
escapes, no backslashes, no Unicode look-alikes); punycode labels (`xn--`) pass only where
the allowed domain itself is written that way.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable
from urllib.parse import urlsplit

from bot.profiles import Profile

_HOST = re.compile(r"^[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?$")
# Bare names that chat clients link: common top-level domains only, so "Node.js" or
# "returns.pdf" stay as written.
_TLDS = ("com|net|org|info|biz|io|co|me|app|dev|xyz|top|site|online|shop|store|link|click|ly|gl|to|tk|"
         "ru|cn|uk|de|fr|eu|us|es|it|nl|be|ch|ca|au|in|jp|example|test")
_URL = re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://[^\s<>\"'`]+|\bwww\.[^\s<>\"'`]+"
                  rf"|(?<![@\w.-])(?:[a-z0-9-]+\.)+(?:{_TLDS})\b(?:/[^\s<>\"'`]*)?")
_TRAILING = ".,;:!?)]}*_~"  # punctuation after a URL in prose, not part of it


def _host(url: str) -> str | None:
    """The lower-cased host of an http(s) URL we would open, else None."""
    if any(c.isspace() or ord(c) < 32 or c == "\\" for c in url):
        return None
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or "@" in parts.netloc or not url.isascii():
        return None
    host = host.rstrip(".").lower()
    return host if _HOST.match(host) and ".." not in host else None


def _domain(name: str) -> str:
    """An allowed domain as configured (maybe a URL, maybe Unicode) as an ASCII host."""
    name = name.strip().lower()
    name = urlsplit(name).hostname or name if "://" in name else name.split("/")[0]
    name = name.lstrip("*.").rstrip(".")
    try:
        return name.encode("idna").decode("ascii")
    except UnicodeError:
        return name if name.isascii() else ""


def _canonical(url: str) -> str:
    """A URL as compared with cited ones: no fragment, no trailing slash, host lower-cased."""
    parts = urlsplit(url.strip())
    return parts._replace(netloc=parts.netloc.lower(), fragment="").geturl().rstrip("/")


def defang(url: str) -> str:
    """`url` as text no chat client links: `https[:]//evil[.]example/x` (every dot, so no name
    inside its path or query becomes a link either)."""
    return re.sub(r"(?i)^([a-z][a-z0-9+.-]*):/+", r"\1[:]//", url).replace(".", "[.]")


@dataclass(frozen=True)
class LinkPolicy:
    """The links one reply may carry: its profile's allowed domains and its cited URLs."""

    allowed_domains: tuple[str, ...] = ()
    cited_urls: tuple[str, ...] = ()

    @classmethod
    def of(cls, allowed_domains: Iterable[str] = (), cited_urls: Iterable[str] = ()) -> "LinkPolicy":
        domains = tuple(d for d in (_domain(name) for name in allowed_domains) if d)
        return cls(domains, tuple(_canonical(url) for url in cited_urls if _host(url)))

    def allows(self, url: str) -> bool:
        """May `url` be clickable (or an image's link)? See the module docstring."""
        host = _host(url.strip())
        if host is None:
            return False
        if any(host == d or host.endswith("." + d) for d in self.allowed_domains):
            return True
        return _canonical(url) in self.cited_urls

    def plain(self, url: str, label: str = "") -> str:
        """What a link that may not open shows: its label, then its URL defanged."""
        shown = defang(url.strip())
        if not label or label.strip() in (url.strip(), shown):
            return shown
        return f"{label} ({shown})"

    def inert(self, text: str) -> str:
        """`text` with every URL or domain name it mentions that may not open defanged."""
        def one(match: re.Match[str]) -> str:
            found = match.group(0)
            url = found.rstrip(_TRAILING)
            tail = found[len(url):]
            full = url if "://" in url else "https://" + url
            return found if self.allows(full) else defang(url) + tail
        return _URL.sub(one, text)


NO_LINKS = LinkPolicy()  # where nothing says which links may open: none


def policy_for(profile: Profile, cited_urls: Iterable[str] = ()) -> LinkPolicy:
    """The links a reply of `profile` may carry: its allowed domains, the reply's cited
    sources, and the profile's own contact page (a `contact` that is a URL)."""
    contact = [v for v in profile.contact.values() if v.lower().startswith(("http://", "https://"))]
    return LinkPolicy.of(profile.allowed_domains, [*cited_urls, *contact])
