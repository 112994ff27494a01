"""Reading an image, as many times as the verdict needs, within a time limit.

The readings, in order; each is made only while some expected line is still undecided
(`verdict.decide`), so a poster whose lines all read right once costs one reading:

1. `rapid`: RapidOCR detects the text lines (on the image scaled to 800 px) and reads
   each one cut out upright from the full-size image (`crops.crop_upright`);
2. `tess-lines`: Tesseract reads the same regions, each contrast-stretched on its own,
   made dark on light and stacked into one sheet (`crops.line_sheet`), global Otsu
   threshold: the independent second reading of every detected line;
3. `rapid-norm`: RapidOCR reads the regions again as Tesseract saw them (stretched,
   dark on light, grey): helps low contrast and outlined type;
4. `tess-sauvola` and `tess-otsu`: Tesseract on the whole image (sparse text, `--psm 11`)
   with Sauvola's adaptive threshold and with a global Otsu threshold, for text the
   detector missed; the image is flattened onto white, grey, contrast stretched and
   scaled so its short side is at least 1000 px and its long side at most 2400 px;
5. `tess-inverted`: the same, inverted (light text on dark panels), Sauvola.

Without RapidOCR, readings 4 and 5 are made, then Tesseract at the image's own size;
with a CJK line, Tesseract reads with `eng` plus the CJK data, then with the CJK data
alone (mixed with `eng`, Tesseract tends to read big Han characters as Latin letters).

Time: the image gets `TIME_LIMIT` seconds of CPU in all (RapidOCR's in this thread,
Tesseract's in its processes); each Tesseract run may use at most what is left (`ulimit
-t`), and no reading starts once it is spent. An image out of time is unreadable, not an
error, and the result is not cached (a later check tries again). CPU time, not wall-clock
time: a busy machine reads as a quiet one does. Everything else is deterministic: the same
image gives the same readings, in the same order, so the same verdict.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .engines import Engines, OcrEngine, OcrTimeout, OcrWord, TesseractEngine, words_of_lines

#: Tesseract's CJK languages: mixed with eng, Tesseract reads big Han characters as Latin
#: letters, so one reading is made with them alone.
CJK_LANGUAGES = frozenset({"chi_sim", "chi_tra", "jpn", "kor"})
#: CPU seconds an image may take to read, all readings together.
TIME_LIMIT = 8.0
#: Tesseract's working size: short side at least this, long side at most LONG_MAX.
SHORT_MIN, LONG_MAX, MAX_UPSCALE = 1000, 2400, 4.0
#: Longest side an image is read at at all (larger images are scaled down first).
IMAGE_MAX = 4096


@dataclass(frozen=True)
class Reading:
    """The words one reading found, and where it came from."""

    source: str  # rapid, tess-lines, ...
    engine: str  # rapidocr | tesseract
    words: tuple[OcrWord, ...]
    #: Pixels of the image file per pixel of the words' boxes (the image was read scaled).
    scale: float = 1.0


class OutOfTime(Exception):
    """The image's time ran out before the verdict was reached."""


class Clock:
    """The CPU time left for one image: this thread's (the RapidOCR stages run in it,
    single-threaded) plus the Tesseract runs' (`add`). CPU time, not wall-clock time, so a
    busy machine does not change the verdict."""

    def __init__(self, limit: float, now: Callable[[], float] = time.thread_time) -> None:
        self._now = now
        self._start = now()
        self._children = 0.0
        self.limit = limit

    def add(self, seconds: float) -> None:
        self._children += seconds

    def spent(self) -> float:
        return self._now() - self._start + self._children

    def left(self) -> float:
        return self.limit - self.spent()

    def check(self) -> float:
        left = self.left()
        if left <= 0:
            raise OutOfTime()
        return left


def load_rgb(path: Path) -> Any:
    """The image as RGB, transparency flattened onto white (transparent pixels read as
    white paper, not black), at most IMAGE_MAX px on its long side."""
    return load_image(path)[0]


def load_image(path: Path) -> tuple[Any, float]:
    """`load_rgb`, and the file's pixels per pixel of the image returned."""
    from PIL import Image

    with Image.open(path) as opened:
        opened.load()
        img: Image.Image = opened.convert("RGBA") if (
            opened.mode in ("RGBA", "LA", "PA") or "transparency" in opened.info) else \
            opened.convert("RGB")
    if img.mode == "RGBA":
        flat = Image.new("RGBA", img.size, (255, 255, 255, 255))
        flat.alpha_composite(img)
        img = flat.convert("RGB")
    width = img.width
    if max(img.size) > IMAGE_MAX:
        scale = IMAGE_MAX / max(img.size)
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                         Image.Resampling.LANCZOS)
    return img, width / img.width


def tesseract_page(img: Any, own_size: bool = False) -> Any:
    """The image as Tesseract reads a whole page: grey, contrast stretched, sized."""
    from PIL import Image, ImageOps

    gray = ImageOps.autocontrast(ImageOps.grayscale(img))
    if own_size:
        return gray
    short, long = min(gray.size), max(gray.size)
    scale = 1.0
    if short < SHORT_MIN:
        scale = min(MAX_UPSCALE, SHORT_MIN / short)
    if long * scale > LONG_MAX:
        scale = LONG_MAX / long
    if scale == 1.0:
        return gray
    size = (max(1, round(gray.width * scale)), max(1, round(gray.height * scale)))
    return gray.resize(size, Image.Resampling.LANCZOS)


def readings(engines: Engines | OcrEngine, path: Path, languages: Sequence[str],
             clock: Clock) -> Iterator[Reading]:
    """The readings of the image at `path`, in order (see the module's docstring). The
    caller stops iterating once it has its verdict. Raises OutOfTime, OcrFailed, and
    OSError/ValueError for an image that cannot be opened."""
    img, factor = load_image(path)
    if not isinstance(engines, Engines):  # one engine given as such (tests, other engines)
        yield from _single_engine(engines, img, languages, clock, factor)
        return
    rapid, tess = engines.rapid, engines.tesseract
    if tess is not None:  # Tesseract reads with the data it has (RapidOCR reads the rest)
        installed = tess.languages()
        languages = tuple(lang for lang in languages if lang in installed) or ("eng",)
    cjk = [lang for lang in languages if lang in CJK_LANGUAGES]
    boxes: list[Any] = []
    crops: list[Any] = []
    if rapid is not None:
        import numpy as np

        from .crops import crop_upright

        clock.check()
        rgb = np.asarray(img)
        boxes = rapid.detect(rgb)
        crops = [crop_upright(rgb, box) for box in boxes]
        yield Reading("rapid", "rapidocr", tuple(words_of_lines(boxes, rapid.recognise(crops))),
                      factor)
    if tess is not None and crops:
        yield Reading("tess-lines", "tesseract",
                      tuple(_sheet_reading(tess, crops, boxes, languages, clock)), factor)
    if rapid is not None and crops:
        from .crops import normalised_gray

        clock.check()
        grey = [np.stack([normalised_gray(c)] * 3, axis=-1) for c in crops]
        yield Reading("rapid-norm", "rapidocr",
                      tuple(words_of_lines(boxes, rapid.recognise(grey))), factor)
    if tess is None:
        return
    page = tesseract_page(img)
    page_scale = factor * img.width / page.width
    yield _tess(tess, "tess-sauvola", page, languages, clock, TesseractEngine.SAUVOLA,
                page_scale)
    yield _tess(tess, "tess-otsu", page, languages, clock, TesseractEngine.OTSU, page_scale)
    from PIL import ImageOps

    yield _tess(tess, "tess-inverted", ImageOps.invert(page), languages, clock,
                TesseractEngine.SAUVOLA, page_scale)
    if rapid is None:
        if cjk:
            yield _tess(tess, "tess-cjk", page, cjk, clock, TesseractEngine.SAUVOLA,
                        page_scale)
        own = tesseract_page(img, own_size=True)
        if own.size != page.size:
            yield _tess(tess, "tess-own", own, cjk or languages, clock, TesseractEngine.SAUVOLA,
                        factor)


def _tess(tess: TesseractEngine, source: str, image: Any, languages: Sequence[str],
          clock: Clock, thresholding: int, scale: float, psm: int = 11) -> Reading:
    left = clock.check()
    try:
        words = tess.read_with(image, languages, psm=psm, thresholding=thresholding,
                               timeout=left, spent=clock.add)
    except OcrTimeout:
        raise OutOfTime() from None
    return Reading(source, "tesseract", tuple(words), scale)


def _sheet_reading(tess: TesseractEngine, crops: Sequence[Any], boxes: Sequence[Any],
                   languages: Sequence[str], clock: Clock) -> list[OcrWord]:
    """Tesseract's words of the stacked line crops, each placed in its crop's line (and
    at its crop's place in the image, for the reading orders)."""
    from .crops import line_sheet, owner_of

    sheet, spans = line_sheet(crops)
    left = clock.check()
    try:
        # psm 6: one uniform block of text; global Otsu on crops stretched one by one.
        words = tess.read_with(sheet, languages, psm=6, thresholding=TesseractEngine.OTSU,
                               timeout=left, spent=clock.add)
    except OcrTimeout:
        raise OutOfTime() from None
    placed: list[OcrWord] = []
    for word in words:
        i = owner_of(spans, word.top, word.height)
        if i is None:
            continue
        xs, ys = boxes[i][:, 0], boxes[i][:, 1]
        # Same line id for a crop's words; the left edge keeps their order in the line.
        # Where each word is in the image is not worked out: its region is its line's.
        region = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        placed.append(OcrWord(word.text, int(xs.min()) + word.left // 8, int(ys.min()),
                              max(1, word.width // 8), int(ys.max() - ys.min()), i, word.conf,
                              region=region))
    placed.sort(key=lambda w: (w.line, w.left))
    return placed


def _single_engine(engine: OcrEngine, img: Any, languages: Sequence[str],
                   clock: Clock, factor: float = 1.0) -> Iterator[Reading]:
    """Readings with one engine of any kind: the image sized for OCR, inverted, with the
    CJK data alone, at its own size."""
    from PIL import ImageOps

    name = getattr(engine, "name", None) or engine.identity().split(" ")[0]
    page = tesseract_page(img)
    cjk = [lang for lang in languages if lang in CJK_LANGUAGES]
    variants: list[tuple[str, Any, Sequence[str]]] = [
        ("page", page, languages), ("inverted", ImageOps.invert(page), languages)]
    if cjk:
        variants.append(("cjk", page, cjk))
    own = tesseract_page(img, own_size=True)
    if own.size != page.size:
        variants.append(("own", own, cjk or languages))
    for source, image, langs in variants:
        clock.check()
        yield Reading(f"{name}-{source}", name, tuple(engine.read(image, langs)),
                      factor * img.width / image.width)
