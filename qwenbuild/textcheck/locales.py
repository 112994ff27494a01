"""Which OCR language data reads which copy: locales (BCP 47) and scripts to Tesseract's
languages, and what RapidOCR can read.

A job's locale (`de`, `zh-Hans`, `pt-BR`, ...) names the language of its copy; Tesseract
reads it best with that language's data (`deu`, `chi_sim`, `por`, ...), installed as a
Debian package each (`tesseract-ocr-deu`). Whatever the locale, a line in a script other
than Latin needs data for that script (Cyrillic, Greek, Han, kana, Hangul, ...). RapidOCR's
recogniser reads the characters of its dictionary (Latin with accents, Greek, Chinese,
Japanese kana; not Cyrillic, Hangul, Arabic, ...): a line with a character outside it is
read by Tesseract alone.

`plan_reading` makes the plan for one image: Tesseract's languages, the lines no installed
engine can read (skipped, with the package to install), and the locale's language data
that is missing (read anyway, with what is installed, and said).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Collection, Container, Sequence
from dataclasses import dataclass, field

#: Tesseract's language for a BCP 47 primary language subtag (Chinese: by script, below).
TESSERACT_LANGUAGES = {
    "en": "eng", "de": "deu", "fr": "fra", "es": "spa", "it": "ita", "pt": "por",
    "nl": "nld", "sv": "swe", "da": "dan", "nb": "nor", "nn": "nor", "no": "nor",
    "fi": "fin", "is": "isl", "pl": "pol", "cs": "ces", "sk": "slk", "sl": "slv",
    "hr": "hrv", "sr": "srp", "bs": "bos", "hu": "hun", "ro": "ron", "bg": "bul",
    "ru": "rus", "uk": "ukr", "be": "bel", "el": "ell", "tr": "tur", "et": "est",
    "lv": "lav", "lt": "lit", "ca": "cat", "eu": "eus", "gl": "glg", "ga": "gle",
    "cy": "cym", "mt": "mlt", "sq": "sqi", "mk": "mkd", "ar": "ara", "fa": "fas",
    "he": "heb", "hi": "hin", "bn": "ben", "ta": "tam", "te": "tel", "th": "tha",
    "vi": "vie", "id": "ind", "ms": "msa", "tl": "tgl", "fil": "tgl", "ja": "jpn",
    "ko": "kor", "ka": "kat", "hy": "hye", "af": "afr", "sw": "swa",
}
_CJK_LANGUAGES = frozenset({"chi_sim", "chi_tra", "jpn", "kor"})
#: Chinese by script or region subtag.
_CHINESE_TRADITIONAL = frozenset({"hant", "tw", "hk", "mo"})

NAMES = {
    "eng": "English", "deu": "German", "fra": "French", "spa": "Spanish", "ita": "Italian",
    "por": "Portuguese", "nld": "Dutch", "swe": "Swedish", "dan": "Danish",
    "nor": "Norwegian", "fin": "Finnish", "isl": "Icelandic", "pol": "Polish",
    "ces": "Czech", "slk": "Slovak", "slv": "Slovenian", "hrv": "Croatian",
    "srp": "Serbian", "bos": "Bosnian", "hun": "Hungarian", "ron": "Romanian",
    "bul": "Bulgarian", "rus": "Russian", "ukr": "Ukrainian", "bel": "Belarusian",
    "ell": "Greek", "tur": "Turkish", "est": "Estonian", "lav": "Latvian",
    "lit": "Lithuanian", "cat": "Catalan", "eus": "Basque", "glg": "Galician",
    "gle": "Irish", "cym": "Welsh", "mlt": "Maltese", "sqi": "Albanian",
    "mkd": "Macedonian", "ara": "Arabic", "fas": "Persian", "heb": "Hebrew",
    "hin": "Hindi", "ben": "Bengali", "tam": "Tamil", "tel": "Telugu", "tha": "Thai",
    "vie": "Vietnamese", "ind": "Indonesian", "msa": "Malay", "tgl": "Tagalog",
    "jpn": "Japanese", "kor": "Korean", "kat": "Georgian", "hye": "Armenian",
    "afr": "Afrikaans", "swa": "Swahili", "chi_sim": "Chinese (simplified)",
    "chi_tra": "Chinese (traditional)",
}

#: Scripts other than Latin, by the first word of their characters' Unicode names, and
#: the Tesseract languages that read them (the first is suggested when none is installed).
SCRIPT_LANGUAGES: dict[str, tuple[str, ...]] = {
    "CYRILLIC": ("rus", "ukr", "bul", "srp", "mkd", "bel"),
    "GREEK": ("ell",),
    "ARABIC": ("ara", "fas"),
    "HEBREW": ("heb",),
    "DEVANAGARI": ("hin",),
    "BENGALI": ("ben",),
    "TAMIL": ("tam",),
    "TELUGU": ("tel",),
    "THAI": ("tha",),
    "GEORGIAN": ("kat",),
    "ARMENIAN": ("hye",),
    "HANGUL": ("kor",),
    "HIRAGANA": ("jpn",),
    "KATAKANA": ("jpn",),
    "CJK": ("chi_sim", "chi_tra", "jpn"),
}


def tesseract_language(locale: str | None) -> str | None:
    """Tesseract's language for a BCP 47 locale (`de` -> deu, `zh-Hant` -> chi_tra,
    `pt-BR` -> por), or None for no locale or a language it has no data for."""
    if not locale:
        return None
    parts = locale.replace("_", "-").lower().split("-")
    if parts[0] == "zh":
        return "chi_tra" if _CHINESE_TRADITIONAL & set(parts[1:]) else "chi_sim"
    return TESSERACT_LANGUAGES.get(parts[0])


def package(language: str) -> str:
    """The Debian package of a Tesseract language (`chi_sim` -> tesseract-ocr-chi-sim)."""
    return "tesseract-ocr-" + language.replace("_", "-").lower()


def name(language: str) -> str:
    return NAMES.get(language, language)


def script_of(ch: str) -> str | None:
    """The script of a letter, as SCRIPT_LANGUAGES names it; None for Latin letters,
    digits, punctuation and anything else."""
    if unicodedata.category(ch)[0] not in "LN":
        return None
    try:
        first = unicodedata.name(ch).split(" ", 1)[0]
    except ValueError:
        return None
    if first == "CJK" and unicodedata.category(ch)[0] != "L":
        return None
    return first if first in SCRIPT_LANGUAGES else None


def scripts(line: str) -> list[str]:
    """The scripts other than Latin in `line`, in order of first appearance. Kana makes a
    line Japanese, so its Han characters are read with the Japanese data too."""
    found: list[str] = []
    for ch in line:
        s = script_of(ch)
        if s is not None and s not in found:
            found.append(s)
    if ("HIRAGANA" in found or "KATAKANA" in found) and "CJK" in found:
        found.remove("CJK")
    return found


def letters(line: str) -> str:
    """The letters, digits and marks of a line, as written (NFC)."""
    return "".join(ch for ch in unicodedata.normalize("NFC", line)
                   if unicodedata.category(ch)[0] in "LNM")


@dataclass
class ReadingPlan:
    """How to read one image's lines."""

    #: Tesseract's languages, in order (the first leads).
    languages: tuple[str, ...]
    #: Lines no installed engine reads, with the reason.
    skipped: dict[str, str] = field(default_factory=dict)
    #: Lines RapidOCR cannot read (characters outside its dictionary): Tesseract's alone.
    tesseract_only: frozenset[str] = frozenset()
    #: What is missing and was read without ("de: no Tesseract data for German (deu);
    #: install tesseract-ocr-deu").
    notes: tuple[str, ...] = ()


def plan_reading(lines: Sequence[str], installed: Collection[str],
                 locale: str | None = None,
                 rapid_reads: Container[str] | None = None) -> ReadingPlan:
    """Tesseract's languages for `lines` in `locale`, given the installed Tesseract
    languages and, when RapidOCR is installed, the characters it reads (`rapid_reads`).

    English (`eng`) always; the locale's language first when installed (else a note
    says what to install, and the lines are read with what there is). A line in another
    script needs a language for it: the locale's when it reads that script, else the
    first installed of SCRIPT_LANGUAGES; when none is installed and RapidOCR cannot read
    the line either, it is skipped with the package to install.
    """
    from .score import normalise

    wanted = tesseract_language(locale)
    langs: list[str] = []
    notes: list[str] = []
    if wanted is not None and wanted != "eng":
        if wanted in installed:
            # CJK data is added for the lines that need it (below), as without a locale:
            # mixed with eng it reads Latin lines worse.
            if wanted not in _CJK_LANGUAGES:
                langs.append(wanted)
        else:
            notes.append(f"locale {locale}: Tesseract's {name(wanted)} data ({wanted}) not "
                         f"installed: install {package(wanted)}")
    langs.append("eng")
    skipped: dict[str, str] = {}
    tesseract_only: set[str] = set()
    for line in lines:
        if not normalise(line):
            skipped[line] = "no letters or digits to read"
            continue
        rapid_ok = rapid_reads is not None and all(ch in rapid_reads for ch in letters(line))
        if rapid_reads is not None and not rapid_ok:
            tesseract_only.add(line)
        for script in scripts(line):
            options = list(SCRIPT_LANGUAGES[script])
            if wanted in options:  # the locale's own language reads its script first
                options.remove(wanted)
                options.insert(0, wanted)
            have = [lang for lang in options if lang in langs] or [
                lang for lang in options if lang in installed]
            if have:
                if have[0] not in langs:
                    langs.append(have[0])
            elif not rapid_ok:
                skipped[line] = (f"no Tesseract language data for {name(options[0])} "
                                 f"({options[0]}); install {package(options[0])} to check it")
                tesseract_only.discard(line)
                break
    return ReadingPlan(tuple(dict.fromkeys(langs)), skipped, frozenset(tesseract_only),
                       tuple(notes))


__all__ = ["NAMES", "ReadingPlan", "SCRIPT_LANGUAGES", "TESSERACT_LANGUAGES", "letters",
           "name", "package", "plan_reading", "script_of", "scripts", "tesseract_language"]
