"""Text regions cut out upright, and the images Tesseract reads made from them.

The detector (RapidOCR's) gives each text line as a quadrilateral: rotated, sheared by
perspective, or straight. `crop_upright` maps it onto an upright rectangle (a perspective
warp), so a rotated headline reaches the recogniser as a straight line. `line_sheet` stacks
the crops into one image for Tesseract: each line grayscale, its contrast stretched on its
own (a pale headline on a pale panel becomes black on white), dark text on light (the
polarity of each crop is decided from its border), scaled to one text height, one line
under the other with white space between. Tesseract then reads every line with a global
Otsu threshold (`--psm 6`, a uniform block), in one process.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

#: Extra margin around a detected box, as a fraction of its height (the detector's box is
#: tight; recognisers read better with a little background around the glyphs).
PAD = 0.12
#: Height of a line in the sheet Tesseract reads (px): around 30 px x-height, its best.
SHEET_LINE = 64
SHEET_GAP = 28
SHEET_MARGIN = 24
SHEET_MAX_WIDTH = 2400


def crop_upright(rgb: Any, quad: Any, pad: float = PAD) -> Any:
    """The region `quad` (4x2: top-left, top-right, bottom-right, bottom-left) of an RGB
    numpy image, warped upright, with `pad` x its height of margin on every side."""
    import cv2
    import numpy as np

    q = np.asarray(quad, dtype=np.float32)
    width = max(float(np.linalg.norm(q[0] - q[1])), float(np.linalg.norm(q[3] - q[2])))
    height = max(float(np.linalg.norm(q[0] - q[3])), float(np.linalg.norm(q[1] - q[2])))
    width, height = max(2.0, width), max(2.0, height)
    m = pad * height
    w_out, h_out = int(round(width + 2 * m)), int(round(height + 2 * m))
    target = np.array([[m, m], [m + width, m], [m + width, m + height], [m, m + height]],
                      dtype=np.float32)
    warp = cv2.getPerspectiveTransform(q, target)
    crop = cv2.warpPerspective(rgb, warp, (w_out, h_out), borderMode=cv2.BORDER_REPLICATE,
                               flags=cv2.INTER_CUBIC)
    if crop.shape[0] > 1.5 * crop.shape[1]:  # a vertical line: read it lying down
        crop = np.ascontiguousarray(np.rot90(crop))
    return crop


def normalised_gray(crop: Any) -> Any:
    """A crop as grayscale uint8, contrast stretched (1st..99th percentile), dark text on
    light background (inverted when its border is darker than its middle)."""
    import cv2
    import numpy as np

    gray = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY).astype(np.float32)
    lo, hi = np.percentile(gray, (1, 99))
    if hi - lo < 1:
        return np.full(gray.shape, 255, dtype=np.uint8)
    gray = np.clip((gray - lo) * (255.0 / (hi - lo)), 0, 255)
    h, w = gray.shape
    b = max(1, min(h, w) // 10)
    border = np.concatenate([gray[:b].ravel(), gray[-b:].ravel(), gray[:, :b].ravel(),
                             gray[:, -b:].ravel()])
    if np.median(border) < 128:  # light text on a dark ground
        gray = 255 - gray
    return gray.astype(np.uint8)


def line_sheet(crops: Sequence[Any]) -> tuple[Any, list[tuple[int, int]]]:
    """The crops stacked into one grayscale PIL image for Tesseract, and each crop's
    vertical span in it (to tell which line Tesseract's words came from)."""
    import cv2
    import numpy as np
    from PIL import Image

    rows = []
    for crop in crops:
        gray = normalised_gray(crop)
        h, w = gray.shape
        scale = SHEET_LINE / max(1, h)
        width = max(1, min(SHEET_MAX_WIDTH, int(round(w * scale))))
        rows.append(cv2.resize(gray, (width, SHEET_LINE), interpolation=cv2.INTER_CUBIC
                               if scale > 1 else cv2.INTER_AREA))
    width = max((r.shape[1] for r in rows), default=1) + 2 * SHEET_MARGIN
    height = len(rows) * (SHEET_LINE + SHEET_GAP) + 2 * SHEET_MARGIN
    sheet = np.full((height, width), 255, dtype=np.uint8)
    spans = []
    y = SHEET_MARGIN
    for row in rows:
        sheet[y:y + SHEET_LINE, SHEET_MARGIN:SHEET_MARGIN + row.shape[1]] = row
        spans.append((y, y + SHEET_LINE))
        y += SHEET_LINE + SHEET_GAP
    return Image.fromarray(sheet), spans


def owner_of(spans: Sequence[tuple[int, int]], top: int, height: int) -> int | None:
    """The index of the span a word at `top` (of `height`) lies in, or None."""
    middle = top + height / 2
    for i, (a, b) in enumerate(spans):
        if a - SHEET_GAP / 2 <= middle < b + SHEET_GAP / 2:
            return i
    return None
