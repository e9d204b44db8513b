"""Secrets out of logs, metadata and saved items: one redaction of text, used by every writer.

What counts as a secret (replaced by ``REDACTED``):

* the query-string signature parameters of signed URLs: Azure SAS (``sig``, ``se``, ``st``,
  ``sp``, ``sv``, ``skoid``, ... as in Planetary Computer hrefs ``?st=...&sig=...``), AWS
  SigV4 / S3 presigned URLs (``X-Amz-Signature``, ``X-Amz-Credential``,
  ``X-Amz-Security-Token``), Google signed URLs (``X-Goog-Signature``...), and generic
  ``token``, ``access_token``, ``api_key``, ``apikey``, ``key``, ``password``, ``secret``,
  ``client_secret``, ``signature``, ``code`` parameters;
* user:password in URLs (``https://user:pw@host`` keeps the user);
* ``Authorization: Bearer ...`` / ``Basic ...`` values, and JWT-looking tokens;
* ``client_secret`` / ``sh_client_secret`` / ``password`` / ``token`` values written as
  ``key=value``, ``key: value`` or JSON ``"key": "value"``;
* any literal registered with :func:`register_secret` (e.g. the Sentinel Hub client secret once
  read), wherever it appears.

Signed hrefs lose their signature only: eqi signs Planetary Computer hrefs when it reads them
(:mod:`eqi.io.load`), so a saved item without the signature is what a rerun needs anyway.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

__all__ = ["REDACTED", "redact", "redact_obj", "register_secret", "RedactingFilter"]

REDACTED = "REDACTED"

_QUERY_KEYS = (
    # Azure SAS (Planetary Computer)
    "sig", "se", "st", "sp", "sv", "sr", "spr", "skoid", "sktid", "skt", "ske", "sks", "skv", "sip",
    # AWS SigV4 / presigned S3
    "x-amz-signature", "x-amz-credential", "x-amz-security-token", "x-amz-date",
    "awsaccesskeyid", "signature",
    # Google
    "x-goog-signature", "x-goog-credential",
    # generic
    "token", "access_token", "refresh_token", "id_token", "api_key", "apikey", "key", "password",
    "secret", "client_secret", "code",
)  # fmt: skip
_KEYS_RE = "|".join(re.escape(k) for k in _QUERY_KEYS)
_QUERY = re.compile(r"(?P<lead>[?&](?:" + _KEYS_RE + r")=)(?P<val>[^&#\s\"'<>]+)", re.IGNORECASE)
_USERINFO = re.compile(r"(?P<lead>\b[a-z][a-z0-9+.-]*://[^/\s:@\"']+:)(?P<val>[^@/\s\"']+)(?=@)", re.IGNORECASE)
_AUTH = re.compile(r"(?P<lead>\b(?:Bearer|Basic)\s+)(?P<val>[A-Za-z0-9._~+/=-]{8,})", re.IGNORECASE)
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}")
_KEYVAL = re.compile(
    r"(?P<lead>[\"']?\b(?:sh_client_secret|client_secret|password|passwd|access_token|refresh_token|"
    r"api_key|secret_access_key|aws_secret_access_key|aws_session_token)[\"']?\s*[:=]\s*[\"']?)"
    r"(?P<val>[^\s\"',;&}]+)",
    re.IGNORECASE,
)

_KEYVAL_HINTS = ("secret", "passw", "token", "api_key")

_lock = threading.Lock()
_literals: set[str] = set()


def register_secret(value: str | None) -> None:
    """Redact this literal value everywhere from now on (values shorter than 4 characters are
    ignored: they would redact ordinary text)."""
    if value and len(value) >= 4:
        with _lock:
            _literals.add(value)


def _sub(match: re.Match[str]) -> str:
    return match.group("lead") + REDACTED


def redact(text: str) -> str:
    """``text`` with every secret it holds replaced by ``REDACTED`` (see the module docstring)."""
    if not text:
        return text
    with _lock:
        literals = sorted(_literals, key=len, reverse=True)
    for value in literals:
        if value in text:
            text = text.replace(value, REDACTED)
    low = text.lower()  # cheap guards: most texts need none of the patterns
    if "=" in text and ("?" in text or "&" in text):
        text = _QUERY.sub(_sub, text)
    if "@" in text and "://" in text:
        text = _USERINFO.sub(_sub, text)
    if "bearer" in low or "basic" in low:
        text = _AUTH.sub(_sub, text)
    if "eyj" in low:
        text = _JWT.sub(REDACTED, text)
    if any(k in low for k in _KEYVAL_HINTS):
        text = _KEYVAL.sub(_sub, text)
    return text


def redact_obj(obj: Any) -> Any:
    """A copy of a JSON-like value with every string redacted (keys too)."""
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, dict):
        return {redact_obj(k): redact_obj(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [redact_obj(v) for v in obj]
    return obj


class RedactingFilter(logging.Filter):
    """A handler filter: the record's message (arguments merged), exception text and string
    extras are redacted before any formatter sees them."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken %-format: keep what there is
            message = str(record.msg)
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        record.exc_info = None if record.exc_text else record.exc_info
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for key, value in list(vars(record).items()):
            if key.startswith("eqi_") and isinstance(value, str):
                setattr(record, key, redact(value))
        return True
