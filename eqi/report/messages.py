"""The message catalogue of the reports: every label and sentence in Chinese and English.

One file, ``messages.yaml`` beside this module: ``key: {zh: ..., en: ...}``; placeholders in
``{braces}`` are filled with :meth:`Messages.t`.  Chinese is the default language.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from eqi.errors import ConfigError

__all__ = ["LANGS", "Messages", "catalogue"]

LANGS = ("zh", "en")
_CATALOGUE = Path(__file__).with_name("messages.yaml")


@cache
def catalogue() -> Mapping[str, Mapping[str, str]]:
    """The whole catalogue: key -> {lang: text}."""
    data = yaml.safe_load(_CATALOGUE.read_text(encoding="utf-8"))
    return {str(k): {str(lang): str(text) for lang, text in v.items()} for k, v in data.items()}


class Messages:
    """Text of one language: ``t(key, **values)``; ``label(zh_en)`` picks from a "zh en" label."""

    def __init__(self, lang: str = "zh") -> None:
        if lang not in LANGS:
            raise ConfigError(f"--lang '{lang}' is not supported; use one of: {', '.join(LANGS)}")
        self.lang = lang

    def t(self, key: str, **values: Any) -> str:
        """The text of ``key`` in this language with ``values`` filled in."""
        text = catalogue()[key][self.lang]
        return text.format(**values) if values else text

    def label(self, bilingual: str) -> str:
        """The part of a "中文 english" class label in this language (the whole label if one-sided)."""
        words = bilingual.split()
        zh = [w for w in words if any(ord(c) > 127 for c in w)]
        en = [w for w in words if w not in zh]
        picked = zh if self.lang == "zh" else en
        return " ".join(picked) if picked else bilingual
