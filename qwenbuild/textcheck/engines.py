"""The OCR engines of the text check: RapidOCR (first choice) and Tesseract.

- **RapidOCR** (PyPI `rapidocr`, with `onnxruntime`): PP-OCR detection and recognition
  models shipped inside the wheel, run by ONNX Runtime on the CPU with one thread (same
  image, same numbers). Reads stylised display type, low contrast and Chinese far better
  than Tesseract, and gives a confidence per character. The models are loaded from the
  installed package only: when a model file is missing the engine is unavailable, it never
  downloads one.
- **Tesseract** (Debian's `tesseract-ocr`, through pytesseract): the independent second
  reading, and the only engine when RapidOCR is not installed. Word confidences.

An engine reads words with boxes and confidences from a PIL image; everything else
(which images to read, matching, the verdict, caching) is engine-independent and lives in
`qwenbuild.textcheck`.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import threading
from collections.abc import Callable, Container, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..errors import InputError

INSTALL_HINT = (
    "install Tesseract OCR: `sudo apt-get install tesseract-ocr tesseract-ocr-eng` on "
    "Debian/Ubuntu (add tesseract-ocr-chi-sim or -jpn for Chinese or Japanese copy), "
    "`brew install tesseract` on macOS; qwenbuild drives it through pytesseract "
    "(`pip install pytesseract`)"
)
RAPIDOCR_HINT = "pip install 'qwenbuild[ocr]' (RapidOCR and ONNX Runtime, models included)"


class OcrEngineMissing(InputError):
    """No usable OCR engine on this machine (exit code 2, like other bad input)."""


class OcrFailed(Exception):
    """The engine failed on one image (a crash): that image is reported."""


class OcrTimeout(OcrFailed):
    """One reading took longer than its share of the time allowed per image."""


@dataclass(frozen=True)
class OcrWord:
    """One word (or, for RapidOCR, one detected line) the engine read, with its box."""

    text: str
    left: int
    top: int
    width: int
    height: int
    #: Words with the same line id form one OCR line, listed in the engine's reading order.
    line: int
    #: The engine's confidence, 0..100 (-1 when it gives none).
    conf: float = -1.0
    #: Confidence of each character of `text`, 0..1, when the engine gives them (RapidOCR);
    #: empty otherwise (Tesseract: `conf` holds for every character of the word).
    char_conf: tuple[float, ...] = field(default=())
    #: Where the word is for a repair's mask (x0, y0, x1, y1, in the same pixels as
    #: `left`..), when that differs from its box (a word read from a sheet of line crops:
    #: its whole line's region); None: the box.
    region: tuple[int, int, int, int] | None = None

    @property
    def bounds(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1): `region`, else the box."""
        if self.region is not None:
            return self.region
        return self.left, self.top, self.left + self.width, self.top + self.height


class OcrEngine(Protocol):
    """What the text check needs from an OCR engine."""

    def identity(self) -> str:
        """Name, version and settings, e.g. `tesseract 5.3.0 ...`: part of every cached
        result's key, so an upgraded engine checks again."""
        ...

    def languages(self) -> frozenset[str]:
        """Language codes it reads (Tesseract's names: eng, chi_sim, jpn, ...)."""
        ...

    def read(self, image: Any, languages: Sequence[str]) -> list[OcrWord]:
        """The words in a PIL image, in the engine's reading order."""
        ...


# -- Tesseract ------------------------------------------------------------------------------


class TesseractEngine:
    """Tesseract through pytesseract; one Tesseract process per reading.

    `read` is sparse-text mode (`--psm 11`: text anywhere on a poster) with Sauvola's
    adaptive threshold; `read_with` chooses the page mode and threshold (a global Otsu
    reading, a block of stacked line crops). Single-threaded (OMP_THREAD_LIMIT=1):
    qwenbuild reads several images at once instead.
    """

    #: Page segmentation mode of `read`: sparse text, in no particular order.
    PSM = 11
    #: Binarisation of `read`: Sauvola's adaptive threshold (2); 0 is a global Otsu.
    THRESHOLDING = 2
    OTSU, SAUVOLA = 0, 2
    #: CPU seconds one Tesseract run may take at most (the check gives it less: what is
    #: left of the image's time).
    TIMEOUT = 10.0
    #: Wall-clock seconds after which a run is killed whatever its CPU time (a safety net).
    WALL_LIMIT = 120.0

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
        # (measured: a 1104x1472 comp reads 3x faster with one thread). A value the user
        # set is left alone.
        os.environ.setdefault("OMP_THREAD_LIMIT", "1")
        self._lock = threading.Lock()
        self._identity: str | None = None
        self._languages: frozenset[str] | None = None
        self._tessdata: Path | None = None
        self._characters: dict[tuple[str, ...], frozenset[str] | None] = {}

    name = "tesseract"

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
        return self.read_with(image, languages)

    def characters(self, languages: Sequence[str]) -> frozenset[str] | None:
        """The characters Tesseract can output reading with `languages`: the union of
        their LSTM models' character sets (read from the `.traineddata` files), or None
        when a file cannot be found or read."""
        key = tuple(sorted(languages))
        with self._lock:
            if key in self._characters:
                return self._characters[key]
        folder = self._data_folder()
        found: set[str] | None = set() if folder is not None else None
        for lang in key:
            chars = lstm_characters(folder / f"{lang}.traineddata") if folder else None
            if chars is None or found is None:
                found = None
                break
            found |= chars
        result = frozenset(found) if found is not None else None
        with self._lock:
            self._characters[key] = result
        return result

    def _data_folder(self) -> Path | None:
        """Where Tesseract's language data is (TESSDATA_PREFIX, else what
        `tesseract --list-langs` says)."""
        if self._tessdata is not None:
            return self._tessdata
        prefix = os.environ.get("TESSDATA_PREFIX")
        folder: Path | None = Path(prefix) if prefix else None
        if folder is None:
            import re
            import subprocess

            try:
                out = subprocess.run([self._pt.pytesseract.tesseract_cmd, "--list-langs"],
                                     capture_output=True, text=True, timeout=30)
            except (OSError, subprocess.SubprocessError):
                return None
            match = re.search(r'"([^"]+)"', out.stdout + out.stderr)
            folder = Path(match.group(1)) if match else None
        if folder is not None and (folder / "tessdata").is_dir() and \
                not any(folder.glob("*.traineddata")):
            folder = folder / "tessdata"
        self._tessdata = folder
        return folder

    def read_with(self, image: Any, languages: Sequence[str], psm: int | None = None,
                  thresholding: int | None = None, timeout: float | None = None,
                  spent: Callable[[float], None] | None = None) -> list[OcrWord]:
        """Read `image` with page mode `psm` and binarisation `thresholding`, allowing
        Tesseract `timeout` seconds of CPU (OcrTimeout after); `spent` is told the CPU
        seconds the run took."""
        psm = self.PSM if psm is None else psm
        thr = self.THRESHOLDING if thresholding is None else thresholding
        limit = self.TIMEOUT if timeout is None else max(0.5, min(timeout, self.TIMEOUT))
        tsv, cpu = self._run(image, languages, psm, thr, limit)
        if spent is not None:
            spent(cpu)
        return _words_of_tsv(tsv)

    def _run(self, image: Any, languages: Sequence[str], psm: int, thr: int,
             cpu_limit: float) -> tuple[str, float]:
        """Run Tesseract on `image` (TSV out) under a CPU-time limit (`ulimit -t`, so
        a busy machine does not cut a run short); returns the TSV and the CPU seconds."""
        import math
        import signal
        import subprocess
        import tempfile

        cmd = self._pt.pytesseract.tesseract_cmd
        with tempfile.TemporaryDirectory(prefix="qwenbuild-ocr-") as tmp:
            source = Path(tmp) / "image.png"
            image.save(source)
            errors = Path(tmp) / "errors.txt"
            args = [cmd, str(source), "stdout", "-l", "+".join(languages), "--psm", str(psm),
                    "-c", f"thresholding_method={thr}", "tsv"]
            seconds = max(1, math.ceil(cpu_limit))
            with errors.open("wb") as err:
                try:
                    proc = subprocess.Popen(
                        ["/bin/sh", "-c", 'ulimit -t "$0" 2>/dev/null; exec "$@"', str(seconds),
                         *args], stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL)
                except OSError as exc:
                    raise OcrFailed(f"tesseract failed: {exc}") from exc
                # A safety net in wall-clock time, for a machine too busy to run it at all.
                timer = threading.Timer(self.WALL_LIMIT, proc.kill)
                timer.start()
                try:
                    assert proc.stdout is not None
                    out = proc.stdout.read()
                    proc.stdout.close()
                    _, status, usage = os.wait4(proc.pid, 0)
                finally:
                    timer.cancel()
                proc.returncode = os.waitstatus_to_exitcode(status)
            cpu = usage.ru_utime + usage.ru_stime
            if proc.returncode in (-signal.SIGXCPU, -signal.SIGKILL) or (
                    proc.returncode != 0 and cpu >= seconds - 0.05):
                raise OcrTimeout(f"tesseract took over {seconds}s of CPU")
            if proc.returncode != 0:
                message = errors.read_text("utf-8", "replace").strip().splitlines()
                raise OcrFailed(f"tesseract failed ({proc.returncode}): "
                                f"{message[-1] if message else 'no message'}")
        return out.decode("utf-8", "replace"), cpu


#: Index of the LSTM character set in a `.traineddata` container (Tesseract 4 and 5,
#: `TESSDATA_LSTM_UNICHARSET` of `tessdatamanager.h`).
_LSTM_UNICHARSET = 21
#: Largest language data file read for its character set (the largest are ~60 MB).
_MAX_TRAINEDDATA = 200 * 1024 * 1024


def lstm_characters(path: Path) -> set[str] | None:
    """The single characters of a `.traineddata` file's LSTM character set, or None when
    the file is missing or not such a container. The container: an int32 count of
    components, one int64 offset each (-1: absent), then the components."""
    import struct

    try:
        if path.stat().st_size > _MAX_TRAINEDDATA:
            return None
        data = path.read_bytes()
        count = struct.unpack_from("<i", data, 0)[0]
        if not _LSTM_UNICHARSET < count <= 64:
            return None
        offsets = struct.unpack_from(f"<{count}q", data, 4)
    except (OSError, struct.error):
        return None
    start = offsets[_LSTM_UNICHARSET]
    if start <= 0 or start >= len(data):
        return None
    end = min([o for o in offsets if o > start] + [len(data)])
    lines = data[start:end].decode("utf-8", "replace").splitlines()
    return {token for line in lines[1:]
            if len(token := line.split(" ", 1)[0]) == 1}


def _words_of_tsv(tsv: str) -> list[OcrWord]:
    """Tesseract's TSV as words, each with the id of its line (block, paragraph, line)."""
    words: list[OcrWord] = []
    lines: dict[tuple[str, str, str], int] = {}
    rows = tsv.splitlines()
    for row in rows[1:]:
        cells = row.split("\t")
        if len(cells) < 12:
            continue
        text = cells[11].strip()
        if not text or cells[0] != "5":  # level 5: a word
            continue
        try:
            left, top, width, height = (int(cells[k]) for k in (6, 7, 8, 9))
            conf = float(cells[10])
        except ValueError:
            continue
        line = lines.setdefault((cells[2], cells[3], cells[4]), len(lines))
        words.append(OcrWord(text, left, top, width, height, line, conf))
    return words


# -- RapidOCR -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecLine:
    """One recognised text line: its text, mean confidence and per-character ones."""

    text: str
    score: float
    char_conf: tuple[float, ...]


#: Loaded RapidOCR stages not in use, per (detector, recogniser) model file.
_POOLS: dict[tuple[str, str], list[tuple[Any, Any]]] = {}
_POOL_LOCK = threading.Lock()


class RapidOcrEngine:
    """RapidOCR's PP-OCR detector and recogniser, driven stage by stage.

    `detect` finds text-line quadrilaterals on an image scaled so its long side is
    `DET_LONG_SIDE` px (detection costs by the pixel; this size keeps 12 px subtitles of a
    1664 px poster); `recognise` reads upright line crops (taken from the full image); `read`
    does both. The orientation classifier is not used: the crops are made upright from the
    detector's boxes, and posters have no upside-down lines.
    """

    name = "rapidocr"
    #: Long side of the image the detector sees.
    DET_LONG_SIDE = 800

    def __init__(self) -> None:
        missing = [m for m in ("rapidocr", "onnxruntime", "cv2", "numpy")
                   if importlib.util.find_spec(m) is None]
        if missing:
            raise OcrEngineMissing(f"RapidOCR is not installed ({', '.join(missing)} "
                                   f"missing): {RAPIDOCR_HINT}")
        import rapidocr

        root = Path(rapidocr.__file__).parent / "models"
        det = sorted(root.glob("*_det_*.onnx"))
        rec = sorted(root.glob("*_rec_*.onnx"))
        if not det or not rec:
            # rapidocr would download them; the text check never downloads anything.
            raise OcrEngineMissing(f"RapidOCR's models are not inside the installed package "
                                   f"({root}); reinstall it: {RAPIDOCR_HINT}")
        self._det_path, self._rec_path = self._pick(det), self._pick(rec)
        from importlib.metadata import PackageNotFoundError, version

        try:
            self._version = version("rapidocr")
        except PackageNotFoundError:
            self._version = getattr(rapidocr, "__version__", "?")
        self._characters: Container[str] | None = None

    @staticmethod
    def _pick(paths: list[Path]) -> Path:
        """The newest PP-OCR version's model, the small one when there is a choice."""
        return max(paths, key=lambda p: ("small" in p.name or "mobile" in p.name, p.name))

    def identity(self) -> str:
        return (f"rapidocr {self._version} {self._det_path.stem}+{self._rec_path.stem} "
                f"det{self.DET_LONG_SIDE}")

    def languages(self) -> frozenset[str]:
        # The PP-OCR multilingual models read Latin script, Chinese and Japanese kana.
        return frozenset({"eng", "chi_sim", "chi_tra", "jpn"})

    def characters(self) -> Container[str]:
        """The characters its recogniser reads (its dictionary: Latin with accents, Greek,
        Han, kana; no Cyrillic, Hangul or Arabic). Loads the models on first use. When the
        installed version keeps its dictionary elsewhere: the scripts the PP-OCR
        multilingual models read."""
        if self._characters is None:
            with self._stages() as (_, rec):
                found = getattr(getattr(rec, "postprocess_op", None), "character", None)
            chars = frozenset(c for c in found or () if isinstance(c, str) and len(c) == 1)
            self._characters = chars if len(chars) > 1000 else _PpOcrScripts()
        return self._characters

    @contextmanager
    def _stages(self) -> Iterator[tuple[Any, Any]]:
        """A detector and recogniser to use alone meanwhile. Loaded models are kept for
        the process (per model files) and lent to one reading at a time: a second reading
        running at once loads its own. ONNX Runtime runs with one intra-op thread, in the
        calling thread, so results do not depend on how the work is split."""
        key = (str(self._det_path), str(self._rec_path))
        with _POOL_LOCK:
            pool = _POOLS.setdefault(key, [])
            stages = pool.pop() if pool else None
        if stages is None:
            stages = self._load()
        try:
            yield stages
        finally:
            with _POOL_LOCK:
                _POOLS[key].append(stages)

    def _load(self) -> tuple[Any, Any]:
        import logging

        from rapidocr import RapidOCR

        try:  # no usage telemetry from ONNX Runtime (a no-op where it sends none)
            import onnxruntime

            onnxruntime.disable_telemetry_events()
        except (ImportError, AttributeError):
            pass
        ocr = RapidOCR(params={
            "Global.log_level": "error",
            "Global.use_cls": False,
            "EngineConfig.onnxruntime.intra_op_num_threads": 1,
            "EngineConfig.onnxruntime.inter_op_num_threads": 1,
            "Det.model_path": str(self._det_path),
            "Rec.model_path": str(self._rec_path),
            # The image is sized here (DET_LONG_SIDE), not by the detector.
            "Det.limit_type": "max", "Det.limit_side_len": 4096,
        })
        logging.getLogger("RapidOCR").setLevel(logging.ERROR)
        return ocr._load_det_model(), ocr._load_rec_model()

    def detect(self, rgb: Any) -> list[Any]:
        """Text-line quadrilaterals (4x2 float arrays, in `rgb`'s pixels) of an RGB numpy
        image, top to bottom."""
        import cv2
        import numpy as np

        h, w = rgb.shape[:2]
        scale = min(1.0, self.DET_LONG_SIDE / max(h, w))
        small = rgb if scale == 1.0 else cv2.resize(
            rgb, (max(1, round(w * scale)), max(1, round(h * scale))),
            interpolation=cv2.INTER_AREA)
        with self._stages() as (det, _):
            try:
                found = det(np.ascontiguousarray(small[:, :, ::-1]))
            except Exception as exc:  # noqa: BLE001 - any failure inside ONNX Runtime
                raise OcrFailed(f"rapidocr detection failed: {exc}") from exc
        if found.boxes is None:
            return []
        return [np.asarray(box, dtype=np.float32) / scale for box in found.boxes]

    def recognise(self, crops: Sequence[Any]) -> list[RecLine]:
        """Read upright RGB line crops (numpy), one RecLine each."""
        import numpy as np
        from rapidocr.ch_ppocr_rec.typings import TextRecInput

        if not crops:
            return []
        bgr = [np.ascontiguousarray(c[:, :, ::-1]) for c in crops]
        with self._stages() as (_, rec):
            try:
                out = rec(TextRecInput(img=bgr, return_word_box=True))
            except Exception as exc:  # noqa: BLE001 - any failure inside ONNX Runtime
                raise OcrFailed(f"rapidocr recognition failed: {exc}") from exc
        lines = []
        for text, score, info in zip(out.txts, out.scores, out.word_results, strict=True):
            confs = tuple(float(c) for c in (getattr(info, "confs", None) or ()))
            if len(confs) != len(text):
                confs = (float(score),) * len(text)
            lines.append(RecLine(str(text), float(score), confs))
        return lines

    def read(self, image: Any, languages: Sequence[str]) -> list[OcrWord]:
        import numpy as np

        from .crops import crop_upright

        rgb = np.asarray(image.convert("RGB"))
        boxes = self.detect(rgb)
        crops = [crop_upright(rgb, box) for box in boxes]
        return words_of_lines(boxes, self.recognise(crops))


class _PpOcrScripts:
    """Latin, Greek, Han and kana characters (what PP-OCR's multilingual models read)."""

    def __contains__(self, ch: object) -> bool:
        from .locales import script_of

        return isinstance(ch, str) and script_of(ch) in (None, "GREEK", "CJK", "HIRAGANA",
                                                         "KATAKANA")


def words_of_lines(boxes: Sequence[Any], lines: Sequence[RecLine]) -> list[OcrWord]:
    """One OcrWord per recognised line (the scorer splits at spaces itself)."""
    words = []
    for i, (box, line) in enumerate(zip(boxes, lines, strict=True)):
        if not line.text.strip():
            continue
        xs, ys = box[:, 0], box[:, 1]
        words.append(OcrWord(line.text, int(xs.min()), int(ys.min()), int(xs.max() - xs.min()),
                             int(ys.max() - ys.min()), i, line.score * 100, line.char_conf))
    return words


# -- the engines of the check ---------------------------------------------------------------


class Engines:
    """The engines the check reads with: RapidOCR when installed, and Tesseract."""

    def __init__(self, rapid: RapidOcrEngine | None, tesseract: TesseractEngine | None) -> None:
        if rapid is None and tesseract is None:
            raise OcrEngineMissing(f"no OCR engine: {INSTALL_HINT}; better also "
                                   f"{RAPIDOCR_HINT}")
        self.rapid = rapid
        self.tesseract = tesseract
        self._charsets: dict[tuple[str, ...], dict[str, Container[str]]] = {}

    def identity(self) -> str:
        return " + ".join(e.identity() for e in (self.rapid, self.tesseract) if e is not None)

    def languages(self) -> frozenset[str]:
        langs: set[str] = set()
        for engine in (self.rapid, self.tesseract):
            if engine is not None:
                langs |= engine.languages()
        return frozenset(langs)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(e.name for e in (self.rapid, self.tesseract) if e is not None)

    def charsets(self, languages: Sequence[str]) -> dict[str, Container[str]]:
        """What each engine can output, folded as lines are compared (`score.fold`), by
        engine name; an engine whose character set is unknown is left out."""
        from .score import fold

        key = tuple(languages)
        if key not in self._charsets:
            found: dict[str, Container[str]] = {}
            if self.rapid is not None:
                chars = self.rapid.characters()
                found["rapidocr"] = (frozenset(f for c in chars for f in fold(c))
                                     if isinstance(chars, frozenset) else chars)
            if self.tesseract is not None:
                tess = self.tesseract.characters(languages)
                if tess is not None:
                    found["tesseract"] = frozenset(f for c in tess for f in fold(c))
            self._charsets[key] = found
        return self._charsets[key]


def _rapid_or_none() -> RapidOcrEngine | None:
    if os.environ.get("QWENBUILD_OCR", "").strip().lower() == "tesseract":
        return None  # forced off (the one-engine path, for comparison and tests)
    try:
        return RapidOcrEngine()
    except OcrEngineMissing:
        return None


def default_engine() -> Engines:
    """The engines `check` and `build --verify-text` use: RapidOCR and Tesseract, or the
    one of them that is installed. Raises OcrEngineMissing when neither is."""
    rapid = _rapid_or_none()
    tesseract: TesseractEngine | None = None
    problem: OcrEngineMissing | None = None
    try:
        tesseract = TesseractEngine()
        tesseract.identity()  # fail now, with the install hint, not on the first image
        if "eng" not in tesseract.languages():
            raise OcrEngineMissing("Tesseract has no English language data (eng): "
                                   f"{INSTALL_HINT}")
    except OcrEngineMissing as exc:
        tesseract, problem = None, exc
    if rapid is None and problem is not None:
        raise problem
    return Engines(rapid, tesseract)
