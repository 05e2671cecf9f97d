"""Server-supplied text made fit for an exception message: credential removed, flattened and bounded.

Whatever a server (or a proxy in front of it) answers may repeat the credential it was sent, and the
message of an exception travels where no secrets masker runs: trigger events in the metadata database, the
UI's connection test, failure callbacks. Every piece of server text therefore passes through a
:class:`Redactor` before it reaches a message, and is cut to a bounded length in linear time.
"""

from __future__ import annotations

import codecs
import json
import logging
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, quote_plus

REDACTED = "***"
SNIPPET_LENGTH = 160
#: Characters of a body looked at for a snippet; the rest of a long body never costs anything.
SNIPPET_SCAN = 4096


class Redactor:
    """Replaces every occurrence of the given secrets, also URL-quoted or JSON-escaped, with ``***``."""

    __slots__ = ("_secrets",)

    def __init__(self, secrets: Iterable[str]) -> None:
        forms: set[str] = set()
        for secret in secrets:
            if secret:
                forms |= {
                    secret,
                    quote(secret, safe=""),
                    quote_plus(secret, safe=""),
                    json.dumps(secret)[1:-1],
                }
        # longest first, so that "Bearer <token>" goes as a whole before the token alone is looked for
        self._secrets = tuple(sorted(forms, key=len, reverse=True))

    @property
    def longest(self) -> int:
        """Length of the longest form looked for: a cut this close to the end may hide part of one."""
        return len(self._secrets[0]) if self._secrets else 0

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def finds(self, text: str) -> bool:
        """Whether ``text`` holds a secret in any of the forms looked for."""
        return any(secret in text for secret in self._secrets)

    def deep(self, value: Any) -> Any:
        """``value`` (parsed JSON: dicts, lists, strings, numbers) with every string redacted, keys too."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {self.deep(key): self.deep(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.deep(item) for item in value]
        return value


def credential_forms(authorization: str) -> list[str]:
    """What a server could echo: the whole Authorization value and, for ``Bearer <jwt>``, the token alone."""
    scheme, _, token = authorization.partition(" ")
    return [authorization, token.strip()] if scheme.lower() == "bearer" and token.strip() else [authorization]


def clip(text: str, length: int = SNIPPET_LENGTH) -> str:
    """``text`` on one line and at most ``length`` characters, an ellipsis marking a cut."""
    flat = " ".join(text[: length * 4].split())
    return flat if len(flat) <= length else flat[: length - 1] + "…"


def decode_prefix(body: bytes, charset: str | None, characters: int = SNIPPET_SCAN) -> tuple[str, bool]:
    """The first ``characters`` of ``body`` as text, and whether the body went on past them.

    Uses the declared charset when Python knows it as a text encoding, else UTF-8; bytes that do not
    decode become U+FFFD instead of failing.
    """
    prefix = body[: characters * 4]
    try:
        if charset is None:
            raise LookupError(charset)
        codecs.lookup(charset)
        text = prefix.decode(charset, errors="replace")
    except (LookupError, UnicodeError, ValueError, TypeError):
        text = prefix.decode("utf-8", errors="replace")
    return text[:characters], len(text) > characters or len(prefix) < len(body)


def strip_tags(text: str) -> str:
    """Replace ``<...>`` tags with spaces in one forward scan; an unclosed ``<`` is kept as text."""
    pieces: list[str] = []
    position = 0
    while True:
        start = text.find("<", position)
        if start < 0:
            pieces.append(text[position:])
            break
        end = text.find(">", start + 1)
        if end < 0:  # no tag closes after this point, so none of the rest is a tag
            pieces.append(text[position:])
            break
        pieces.append(text[position:start])
        position = end + 1
    return " ".join(pieces)


def snippet(body: bytes, charset: str | None, redact: Redactor) -> str:
    """A short single-line excerpt of an unexpected body (an HTML error page, say), tags removed.

    Only the first :data:`SNIPPET_SCAN` characters are looked at, so the cost does not grow with the body.
    Secrets are removed before the cut; when the scan window was itself cut, its last characters are dropped
    so that no partial secret can show.
    """
    text, cut = decode_prefix(body, charset)
    text = redact(text)
    if cut and redact.longest:
        text = text[: -redact.longest]
    return clip(strip_tags(text))


_CURRENT = threading.local()
#: Loggers of the HTTP stack that may quote server text: urllib3 logs unparsable header lines verbatim.
HTTP_STACK_LOGGERS = ("urllib3.connection", "urllib3.connectionpool", "urllib3.response")


@contextmanager
def redacting_logs(redact: Redactor) -> Iterator[None]:
    """While a request runs in this thread, remove the credential from the HTTP stack's log records."""
    _CURRENT.redact = redact
    try:
        yield
    finally:
        _CURRENT.redact = None


class _RedactRecords(logging.Filter):
    """Rewrites a record of the current thread's request (message and traceback) when it holds a secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        redact: Redactor | None = getattr(_CURRENT, "redact", None)
        if redact is None:
            return True
        message = record.getMessage()
        trace = logging.Formatter().formatException(record.exc_info) if record.exc_info else record.exc_text
        if redact.finds(message) or (trace and redact.finds(trace)):
            record.msg, record.args = redact(message), None
            record.exc_info, record.exc_text = None, redact(trace) if trace else None
        return True


_FILTER = _RedactRecords()
for _name in HTTP_STACK_LOGGERS:
    logging.getLogger(_name).addFilter(_FILTER)
