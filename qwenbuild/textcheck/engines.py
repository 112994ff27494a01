"""OCR engines behind one small interface; Tesseract (through pytesseract) is the one shipped.

An engine reads words with their boxes from a prepared (grayscale) image. Everything
else (preprocessing, reading orders, scoring, caching) is engine-independent and lives in
`qwenbuild.textcheck`, so adding an engine means writing `read`, `identity` and
`languages` only.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import InputError

INSTALL_HINT = (
    "install Tesseract OCR: `sudo apt-get install tesseract-ocr tesseract-ocr-eng` on "
    "Debian/Ubuntu (add tesseract-ocr-chi-sim or -jpn for Chinese or Japanese copy), "
    "`brew install tesseract` on macOS; qwenbuild drives it through pytesseract "
    "(`pip install pytesseract`)"
)


class OcrEngineMissing(InputError):
    """No usable OCR engine on this machine (exit code 2, like other bad input)."""


class OcrFailed(Exception):
    """The engine failed on one image (a crash, a timeout): that image is reported."""


@dataclass(frozen=True)
class OcrWord:
    """One word the engine read, with its box in the image it was given."""

    text: str
    left: int
    top: int
    width: int
    height: int
    #: Words with the same line id form one OCR line, listed in the engine's reading order.
    line: int
    #: The engine's confidence, 0..100 (-1 when it gives none).
    conf: float = -1.0


class OcrEngine(Protocol):
    """What the text check needs from an OCR engine."""

    def identity(self) -> str:
        """Name and version, e.g. `tesseract 5.3.0`: part of every cached result's key, so
        an upgraded engine checks again."""
        ...

    def languages(self) -> frozenset[str]:
        """Language codes with data installed (Tesseract's: eng, chi_sim, jpn, ...)."""
        ...

    def read(self, image: Any, languages: Sequence[str]) -> list[OcrWord]:
        """The words in a PIL image, in the engine's reading order."""
        ...


class TesseractEngine:
    """Tesseract through pytesseract, in sparse-text mode (`--psm 11`), adaptive threshold.

    Sparse mode finds text anywhere on a poster (headlines, panels, labels) instead of
    expecting a page of paragraphs; the reading orders the scorer tries make up for the
    order it loses. One Tesseract process per image and per preprocessing variant.
    """

    #: Page segmentation mode: sparse text, as much as possible, in no particular order.
    PSM = 11
    #: Binarisation: Sauvola's adaptive threshold (2), not one global Otsu threshold. A
    #: headline running from a light panel onto a darker shape loses its second half with
    #: a global threshold (measured on the demo comps; Sauvola read every line).
    THRESHOLDING = 2
    #: Seconds one Tesseract run may take before the image is reported as failed.
    TIMEOUT = 120

    def __init__(self, command: str | None = None) -> None:
        try:
            import pytesseract
        except ImportError:
            raise OcrEngineMissing(f"the text check needs pytesseract: {INSTALL_HINT}") from None
        self._pt = pytesseract
        if command is not None:
            pytesseract.pytesseract.tesseract_cmd = command
        cmd = pytesseract.pytesseract.tesseract_cmd
        if shutil.which(cmd) is None:
            raise OcrEngineMissing(f"the text check needs the `{cmd}` program, which is not "
                                   f"installed: {INSTALL_HINT}")
        # Tesseract's OpenMP threads cost more than they give on poster-sized images
        # (measured: a 1104x1472 comp reads 3x faster with one thread); qwenbuild runs
        # several images at once instead. A value the user set is left alone.
        os.environ.setdefault("OMP_THREAD_LIMIT", "1")
        self._lock = threading.Lock()
        self._identity: str | None = None
        self._languages: frozenset[str] | None = None

    def identity(self) -> str:
        with self._lock:
            if self._identity is None:
                try:
                    version = self._pt.get_tesseract_version()
                except (self._pt.TesseractNotFoundError, OSError, SystemExit) as exc:
                    # pytesseract exits (SystemExit) on a version string it cannot parse.
                    raise OcrEngineMissing(f"cannot run tesseract ({exc}): {INSTALL_HINT}") \
                        from None
                self._identity = f"tesseract {version} psm{self.PSM} thr{self.THRESHOLDING}"
            return self._identity

    def languages(self) -> frozenset[str]:
        with self._lock:
            if self._languages is None:
                try:
                    self._languages = frozenset(self._pt.get_languages(config=""))
                except (self._pt.TesseractNotFoundError, OSError) as exc:
                    raise OcrEngineMissing(f"cannot run tesseract ({exc}): {INSTALL_HINT}") \
                        from None
            return self._languages

    def read(self, image: Any, languages: Sequence[str]) -> list[OcrWord]:
        pt = self._pt
        try:
            data = pt.image_to_data(
                image, lang="+".join(languages), output_type=pt.Output.DICT,
                config=f"--psm {self.PSM} -c thresholding_method={self.THRESHOLDING}",
                timeout=self.TIMEOUT)
        except RuntimeError as exc:  # pytesseract's timeout
            raise OcrFailed(f"tesseract took over {self.TIMEOUT}s") from exc
        except (pt.TesseractError, OSError) as exc:
            raise OcrFailed(f"tesseract failed: {exc}") from exc
        words: list[OcrWord] = []
        lines: dict[tuple[int, int, int], int] = {}
        for i, text in enumerate(data["text"]):
            text = (text or "").strip()
            if not text:
                continue
            where = (int(data["block_num"][i]), int(data["par_num"][i]),
                     int(data["line_num"][i]))
            line = lines.setdefault(where, len(lines))
            words.append(OcrWord(text, int(data["left"][i]), int(data["top"][i]),
                                 int(data["width"][i]), int(data["height"][i]), line,
                                 float(data["conf"][i])))
        return words


def default_engine() -> OcrEngine:
    """The engine `check` and `build --verify-text` use. Raises OcrEngineMissing."""
    engine = TesseractEngine()
    engine.identity()  # fail now, with the install hint, rather than on the first image
    if "eng" not in engine.languages():
        raise OcrEngineMissing("Tesseract has no English language data (eng): "
                               f"{INSTALL_HINT}")
    return engine
