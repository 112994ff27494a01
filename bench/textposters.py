"""Synthetic brand posters with seeded text errors: the evaluation corpus of the text check.

    python bench/textposters.py OUT_DIR [--count N] [--seed S] [--fonts dev|heldout]
                                        [--chinese N]

Writes OUT_DIR/<id>.png and OUT_DIR/corpus.json: per poster its style, fonts, expected
lines (the copy, as a campaign would give it), the error seeded into what is drawn (kind,
line, the word as drawn) or none. Every poster comes from its own seed, so a corpus is the
same on every machine with the same fonts.

Eight styles, as in issue 18: clean, dark background, photo background, text on panels,
low contrast, outline/shadow, rotated/perspective, busy layouts; headlines wrapped on 1-3
lines. Half the posters (alternating) carry exactly one error: a substituted, dropped,
doubled or swapped letter, a dropped word, or a look-alike word. Chinese posters have the
same styles and a substituted (look-alike), dropped, doubled or swapped character.

Fonts are Debian packages (see FONT_PACKAGES); `bench/textcheck.py` installs them when
run as root, else says which are missing. They are split in two disjoint sets: `dev` (the
corpus the check was developed on) and `heldout` (never looked at while developing), so
the bench can show whether the check generalises beyond the faces it was tuned on.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

STYLES = ("clean", "dark", "photo", "panels", "lowcontrast", "outline", "rotated", "busy")
LATIN_ERRORS = ("substitute", "drop_letter", "double_letter", "swap_letters", "drop_word",
                "lookalike_word")
CJK_ERRORS = ("substitute", "drop_letter", "double_letter", "swap_letters")

#: Debian packages the corpus draws with (apt-get install them).
FONT_PACKAGES = (
    "fonts-dejavu-core", "fonts-liberation", "fonts-roboto", "fonts-open-sans", "fonts-lato",
    "fonts-cantarell", "fonts-freefont-ttf", "fonts-urw-base35", "fonts-crosextra-carlito",
    "fonts-crosextra-caladea", "fonts-linuxlibertine", "fonts-comfortaa",
    "fonts-league-spartan", "fonts-ebgaramond", "fonts-bebas-neue", "fonts-lobster",
    "fonts-inter", "fonts-texgyre", "fonts-cabin", "fonts-karla", "fonts-quicksand",
    "fonts-go", "fonts-jura", "fonts-dosis", "fonts-yanone-kaffeesatz", "fonts-paratype",
    "fonts-gfs-didot", "fonts-wqy-microhei", "fonts-wqy-zenhei", "fonts-arphic-ukai",
    "fonts-arphic-uming", "fonts-lxgw-wenkai",
)

_F = "/usr/share/fonts/"
_T = _F + "truetype/"
_O = _F + "opentype/"
_TEXGYRE = "/usr/share/texmf/fonts/opentype/public/tex-gyre/"  # fonts-texgyre

#: (file, face index) of display faces (headlines) and text faces (subtitles, labels).
DEV_FONTS = {
    "display": [
        (_T + "dejavu/DejaVuSans-Bold.ttf", 0), (_T + "liberation/LiberationSans-Bold.ttf", 0),
        (_T + "roboto/unhinted/RobotoTTF/Roboto-Black.ttf", 0),
        (_O + "bebas-neue/BebasNeue-Bold.otf", 0),
        (_O + "league-spartan/LeagueSpartan-Bold.otf", 0),
        (_O + "inter/Inter-ExtraBold.otf", 0), (_T + "lato/Lato-Black.ttf", 0),
        (_O + "urw-base35/NimbusRoman-Bold.otf", 0), (_O + "ebgaramond/EBGaramond12-Bold.otf", 0),
        (_O + "lobster/lobster.otf", 0), (_O + "cantarell/Cantarell-ExtraBold.otf", 0),
        (_O + "yanone-kaffeesatz/YanoneKaffeesatz-Bold.otf", 0),
        (_T + "comfortaa/Comfortaa-Bold.ttf", 0), (_O + "urw-base35/URWGothic-Demi.otf", 0),
        (_T + "open-sans/OpenSans-CondBold.ttf", 0),
    ],
    "text": [
        (_T + "dejavu/DejaVuSans.ttf", 0), (_T + "liberation/LiberationSerif-Regular.ttf", 0),
        (_T + "roboto/unhinted/RobotoTTF/Roboto-Regular.ttf", 0),
        (_O + "inter/Inter-Regular.otf", 0), (_T + "lato/Lato-Regular.ttf", 0),
        (_O + "cabin/Cabin-Regular.otf", 0), (_O + "urw-base35/NimbusSans-Regular.otf", 0),
        (_O + "linux-libertine/LinLibertine_R.otf", 0),
    ],
    "cjk": [(_T + "wqy/wqy-microhei.ttc", 0), (_T + "arphic/uming.ttc", 0),
            (_T + "lxgw-wenkai/LXGWWenKai-Bold.ttf", 0)],
}
HELDOUT_FONTS = {
    "display": [
        (_T + "open-sans/OpenSans-ExtraBold.ttf", 0), (_O + "inter/InterDisplay-Black.otf", 0),
        (_T + "freefont/FreeSansBold.ttf", 0), (_T + "freefont/FreeSerifBold.ttf", 0),
        (_O + "urw-base35/NimbusSans-Bold.otf", 0), (_O + "urw-base35/P052-Bold.otf", 0),
        (_O + "urw-base35/C059-Bold.otf", 0), (_O + "urw-base35/URWBookman-Demi.otf", 0),
        (_T + "crosextra/Carlito-Bold.ttf", 0), (_T + "crosextra/Caladea-Bold.ttf", 0),
        (_T + "karla/Karla-ExtraBold.otf", 0), (_T + "quicksand/Quicksand-Bold.ttf", 0),
        (_F + "fonts-go/Go-Bold.ttf", 0), (_O + "jura/Jura-Bold.otf", 0),
        (_O + "dosis/Dosis-ExtraBold.otf", 0),
        (_T + "paratype/PTS75F.ttf", 0), (_O + "didot/GFSDidotBold.otf", 0),
        (_T + "dejavu/DejaVuSerifCondensed-Bold.ttf", 0),
        (_O + "league-spartan/LeagueSpartan-Black.otf", 0),
        (_TEXGYRE + "texgyreheros-bold.otf", 0),
    ],
    "text": [
        (_T + "open-sans/OpenSans-Regular.ttf", 0), (_T + "freefont/FreeSans.ttf", 0),
        (_O + "urw-base35/P052-Roman.otf", 0), (_T + "crosextra/Carlito-Regular.ttf", 0),
        (_T + "karla/Karla-Regular.otf", 0), (_T + "paratype/PTS55F.ttf", 0),
        (_F + "fonts-go/Go-Regular.ttf", 0), (_TEXGYRE + "texgyrepagella-regular.otf", 0),
    ],
    "cjk": [(_T + "wqy/wqy-zenhei.ttc", 0), (_T + "arphic/ukai.ttc", 0),
            (_T + "lxgw-wenkai/LXGWWenKai-Regular.ttf", 0)],
}
FONT_SETS = {"dev": DEV_FONTS, "heldout": HELDOUT_FONTS}

#: Qwen-Image's native sizes (1:1, 16:9, 9:16, 4:3, 3:4), halved and at full size.
SIZES = ((1328, 1328), (1664, 928), (928, 1664), (1472, 1140), (1140, 1472),
         (1024, 1024), (832, 1248), (1248, 832))

WORDS = """summer market night festival city lights river garden coffee morning fresh
bakery harbor winter sale grand opening studio design week modern art museum jazz
concert spring bloom travel island escape ocean breeze mountain trail urban farm local
craft beer wine tasting fashion show vintage records book fair street food culture
cinema classic golden hour sunset rooftop party holiday special limited edition new
collection premium quality organic kitchen table family weekend brunch club fitness
yoga retreat digital future summit tech launch electric dreams neon tokyo paris london
berlin velvet orchid silver forest harvest moon autumn maple cedar copper lantern
paper theatre dance academy science planet orbit solar canal ferry tram skyline
aurelia nova atlas meridian horizon""".split()
SUBTITLE_WORDS = """fresh fruit every sunday open daily from nine until late tickets on
sale now free entry for members join us this weekend at the old harbor square live music
and local food book your table today limited seats available new season starts in march
discover the collection online visit our studio downtown all welcome bring your friends
""".split()
#: Real words one look away from another: the look-alike word errors.
LOOKALIKES = {
    "from": "form", "form": "from", "night": "nigh", "open": "oven", "sale": "sole",
    "fresh": "flesh", "market": "marker", "city": "cite", "lights": "fights",
    "river": "rover", "coffee": "toffee", "winter": "writer", "grand": "brand",
    "studio": "stadia", "design": "deign", "week": "weak", "modern": "modem",
    "museum": "museums", "concert": "convert", "spring": "string", "travel": "gravel",
    "island": "inland", "ocean": "clean", "trail": "trial", "farm": "form",
    "craft": "draft", "wine": "wire", "show": "shoe", "book": "look", "fair": "hair",
    "food": "flood", "golden": "olden", "hour": "tour", "party": "parity",
    "special": "spacial", "limited": "limped", "new": "now", "table": "cable",
    "family": "famine", "club": "cub", "future": "fixture", "launch": "lunch",
    "dreams": "creams", "silver": "sliver", "forest": "fores", "harvest": "harvests",
    "moon": "noon", "paper": "pager", "dance": "lance", "planet": "plane", "live": "life",
    "every": "ever", "daily": "dairy", "late": "lane", "free": "tree", "entry": "sentry",
    "join": "coin", "music": "mosaic", "local": "vocal", "today": "toady", "seats": "seals",
    "season": "reason", "starts": "stars", "march": "match", "visit": "vista",
    "bring": "being", "friends": "fiends", "beer": "bear", "tasting": "lasting",
    "culture": "vulture", "cinema": "cinemas", "classic": "classy", "sunset": "sunlet",
    "kitchen": "kitten", "weekend": "weekends", "brunch": "branch", "fitness": "finesse",
    "summit": "submit", "tech": "teach", "electric": "eclectic", "velvet": "vervet",
    "orchid": "orchard", "autumn": "auburn", "copper": "cooper", "lantern": "latern",
    "theatre": "theatres", "academy": "academe", "science": "silence", "orbit": "orbital",
    "solar": "polar", "canal": "canals", "ferry": "fern", "tram": "team",
}

CJK_HEADLINES = """春季灯光节 夏日音乐会 城市咖啡节 秋季新品发布 冬季限时特卖 周末手作市集
海港美食节 艺术设计周 国际电影展 星空露营季 森林徒步之旅 复古唱片展 精品茶叶品鉴 花园早午餐
科技创新峰会 未来城市论坛 新年烟火晚会 湖畔读书会 山城夜景摄影 传统手工艺展 中秋月光市集
江南水乡游 健康瑜伽周 儿童科学乐园 老街小吃节 潮流服饰大赏 海岛度假计划 古镇灯会""".split()
CJK_SUBTITLES = """每周日上午九点开放 全场会员免费入场 限时优惠现已开始 欢迎带上你的朋友
现场音乐与本地美食 预订座位请扫码 新一季三月开启 线上浏览全部新品 老港口广场等你来
门票火热销售中""".split()
#: Look-alike Han characters (the substituted-character errors of Chinese posters).
CJK_LOOKALIKE = {
    "春": "椿", "季": "李", "灯": "打", "光": "先", "节": "苄", "夏": "复", "日": "曰",
    "音": "意", "乐": "东", "会": "合", "城": "域", "市": "币", "咖": "加", "啡": "非",
    "秋": "秒", "新": "亲", "品": "晶", "发": "友", "布": "市", "冬": "东", "限": "垠",
    "时": "吋", "特": "持", "卖": "买", "末": "未", "手": "毛", "作": "昨",
    "集": "焦", "海": "悔", "港": "巷", "美": "姜", "食": "良", "艺": "乞", "术": "木",
    "设": "没", "计": "讦", "电": "由", "影": "景", "展": "屐", "星": "足", "空": "穿",
    "露": "路", "营": "莹", "森": "淼", "林": "材", "徒": "徙", "步": "少", "之": "乏",
    "旅": "族", "复": "夏", "古": "古", "唱": "倡", "片": "斤", "精": "睛", "茶": "荼",
    "叶": "叮", "鉴": "签", "花": "化", "早": "旱", "午": "牛", "餐": "粲",
    "科": "料", "技": "枝", "创": "仓", "峰": "锋", "未": "末", "来": "耒", "论": "伦",
    "坛": "云", "年": "午", "烟": "咽", "火": "大", "晚": "挽", "湖": "胡", "畔": "伴",
    "读": "渎", "书": "韦", "山": "出", "夜": "液", "景": "影", "摄": "聂", "传": "转",
    "统": "充", "工": "土", "月": "用", "江": "红", "南": "商", "水": "永", "乡": "多",
    "游": "遊", "健": "建", "康": "庚", "瑜": "愉", "伽": "加", "儿": "几", "童": "董",
    "学": "字", "园": "圆", "老": "考", "街": "衔", "小": "少", "吃": "乞", "潮": "朝",
    "流": "硫", "服": "股", "饰": "饬", "大": "太", "赏": "尝", "岛": "鸟", "度": "席",
    "假": "暇", "划": "刘", "镇": "填", "国": "图", "际": "标", "周": "同", "上": "土",
    "开": "并", "放": "故", "全": "金", "场": "汤", "员": "贝", "免": "兔", "费": "赞",
    "入": "人", "优": "忧", "惠": "患", "现": "观", "已": "己", "始": "姑", "带": "滞",
    "你": "怀", "的": "约", "朋": "明", "友": "发", "与": "马", "本": "木", "地": "池",
    "预": "顶", "订": "汀", "座": "痤", "位": "拉", "请": "清", "扫": "归", "码": "吗",
    "一": "二", "三": "王", "线": "钱", "浏": "测", "览": "觉", "部": "陪", "口": "日",
    "广": "厂", "等": "第", "门": "们", "票": "栗", "热": "势", "销": "梢", "售": "隹",
    "中": "申", "每": "母", "九": "丸", "点": "占", "两": "雨",
}

PALETTES_LIGHT = [(250, 246, 238), (236, 244, 250), (255, 255, 255), (242, 238, 228),
                  (248, 236, 240), (232, 245, 233), (255, 248, 225)]
PALETTES_DARK = [(20, 24, 38), (12, 44, 52), (40, 12, 36), (18, 18, 18), (30, 42, 20),
                 (60, 20, 20), (10, 30, 70)]
INKS_DARK = [(20, 20, 30), (30, 40, 90), (90, 20, 30), (10, 60, 50), (50, 30, 10)]
INKS_LIGHT = [(255, 255, 255), (250, 230, 170), (200, 240, 255), (255, 210, 200),
              (230, 255, 220)]


@dataclass
class Poster:
    id: str
    seed: int
    style: str
    script: str  # latin | cjk
    size: tuple[int, int]
    lines: list[str]  # expected text: [headline, subtitle]
    error: str | None = None  # kind, or None for a correct poster
    error_line: int | None = None
    drawn: list[str] = field(default_factory=list)  # what was drawn (with the error)
    fonts: list[str] = field(default_factory=list)


# -- copy and errors ------------------------------------------------------------------------


def _latin_copy(rng: random.Random) -> tuple[str, str, int]:
    n = rng.choice((2, 2, 3, 3, 4, 5))
    head = " ".join(rng.sample(WORDS, n))
    sub = " ".join(rng.sample(SUBTITLE_WORDS, rng.randint(3, 6)))
    case = rng.choice(("upper", "upper", "title", "lower"))
    head = head.upper() if case == "upper" else head.title() if case == "title" else head
    sub = sub.capitalize() if rng.random() < 0.7 else sub.upper()
    return head, sub, rng.choice((1, 1, 2, 2, 3))


def _apply_case(template: str, word: str) -> str:
    if template.isupper():
        return word.upper()
    if template[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


def latin_error(rng: random.Random, line: str, kind: str) -> str | None:
    """`line` with one error of `kind`, or None when it has no room for one."""
    words = line.split(" ")
    candidates = [i for i, w in enumerate(words) if len(w) >= 3 and w.isalpha()]
    if kind == "drop_word":
        if len(words) < 3:
            return None
        i = rng.randrange(len(words))
        return " ".join(words[:i] + words[i + 1:])
    if kind == "lookalike_word":
        candidates = [i for i in candidates if words[i].lower() in LOOKALIKES]
        if not candidates:
            return None
        i = rng.choice(candidates)
        words[i] = _apply_case(words[i], LOOKALIKES[words[i].lower()])
        return " ".join(words)
    if not candidates:
        return None
    i = rng.choice(candidates)
    w = words[i]
    k = rng.randrange(1, len(w) - 1) if len(w) > 2 else 1  # not the first letter: realistic
    if kind == "substitute":
        pool = "aeiou" if w[k].lower() in "aeiou" else "bcdfghklmnprstvw"
        choices = [c for c in pool if c != w[k].lower()]
        c = rng.choice(choices)
        w = w[:k] + (c.upper() if w[k].isupper() else c) + w[k + 1:]
    elif kind == "drop_letter":
        w = w[:k] + w[k + 1:]
    elif kind == "double_letter":
        w = w[:k] + w[k] + w[k:]
    elif kind == "swap_letters":
        k = min(k, len(w) - 2)
        if w[k] == w[k + 1]:
            return None
        w = w[:k] + w[k + 1] + w[k] + w[k + 2:]
    words[i] = w
    return " ".join(words)


def cjk_error(rng: random.Random, line: str, kind: str) -> str | None:
    chars = list(line)
    if len(chars) < 3:
        return None
    k = rng.randrange(len(chars))
    if kind == "substitute":
        options = [i for i, c in enumerate(chars) if CJK_LOOKALIKE.get(c, c) != c]
        if not options:
            return None
        k = rng.choice(options)
        chars[k] = CJK_LOOKALIKE[chars[k]]
    elif kind == "drop_letter":
        del chars[k]
    elif kind == "double_letter":
        chars.insert(k, chars[k])
    elif kind == "swap_letters":
        k = min(k, len(chars) - 2)
        if chars[k] == chars[k + 1]:
            return None
        chars[k], chars[k + 1] = chars[k + 1], chars[k]
    return "".join(chars)


# -- drawing --------------------------------------------------------------------------------


def _font(spec: tuple[str, int], size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(spec[0], size, index=spec[1])


def _wrap(words: list[str], parts: int) -> list[str]:
    parts = max(1, min(parts, len(words)))
    per = math.ceil(len(words) / parts)
    return [" ".join(words[i:i + per]) for i in range(0, len(words), per)]


def _background(rng: random.Random, style: str, size: tuple[int, int]) -> tuple[Image.Image, bool]:
    """The background and whether it is dark."""
    w, h = size
    dark = style == "dark" or (style in ("outline", "rotated", "busy", "panels")
                               and rng.random() < 0.35)
    base = rng.choice(PALETTES_DARK if dark else PALETTES_LIGHT)
    img = Image.new("RGB", size, base)
    draw = ImageDraw.Draw(img)
    if style == "photo":
        # A procedural "photo": blurred blobs of colour over a gradient, with grain.
        top = tuple(rng.randint(40, 220) for _ in range(3))
        bottom = tuple(rng.randint(20, 200) for _ in range(3))
        for y in range(h):
            t = y / h
            draw.line([(0, y), (w, y)],
                      fill=tuple(int(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)))
        for _ in range(rng.randint(12, 30)):
            r = rng.randint(w // 20, w // 4)
            x, y = rng.randint(0, w), rng.randint(0, h)
            draw.ellipse([x - r, y - r, x + r, y + r],
                         fill=tuple(rng.randint(0, 255) for _ in range(3)))
        img = img.filter(ImageFilter.GaussianBlur(rng.randint(12, 40)))
        noise = Image.effect_noise(size, rng.randint(10, 30)).convert("RGB")
        img = Image.blend(img, noise, 0.12)
        lum = sum(img.resize((1, 1)).getpixel((0, 0))) / 3
        return img, lum < 128
    if style in ("busy", "panels") or rng.random() < 0.3:
        for _ in range(rng.randint(2, 7) if style == "busy" else rng.randint(0, 3)):
            x0, y0 = rng.randint(-w // 4, w), rng.randint(-h // 4, h)
            x1, y1 = x0 + rng.randint(w // 8, w // 2), y0 + rng.randint(h // 8, h // 2)
            shade = tuple(max(0, min(255, c + rng.randint(-40, 40))) for c in base)
            if rng.random() < 0.5:
                draw.ellipse([x0, y0, x1, y1], fill=shade)
            else:
                draw.rectangle([x0, y0, x1, y1], fill=shade)
    return img, dark


def _contrasting_ink(rng: random.Random, bg: tuple[int, ...], dark: bool,
                     low: bool) -> tuple[int, int, int]:
    if low:  # low contrast: the ink a small step from the background
        step = rng.randint(55, 90) * (1 if sum(bg) / 3 < 128 else -1)
        return tuple(max(0, min(255, c + step + rng.randint(-8, 8))) for c in bg)  # type: ignore
    return rng.choice(INKS_LIGHT if dark else INKS_DARK)


def _text_layer(size: tuple[int, int], lines: list[tuple[str, ImageFont.FreeTypeFont]],
                ink: tuple[int, ...], style: str, rng: random.Random,
                spacing: float) -> tuple[Image.Image, int, int]:
    """Lines drawn centred or left on a transparent layer cropped to them."""
    pad = 40
    boxes = [font.getbbox(text) for text, font in lines]
    width = max(b[2] - b[0] for b in boxes) + 2 * pad
    heights = [int((b[3] - min(0, b[1])) * spacing) for b in boxes]
    height = sum(heights) + 2 * pad
    layer = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    align = rng.choice(("left", "centre"))
    y = pad
    outline = style == "outline"
    mode = rng.choice(("stroke", "shadow", "hollow")) if outline else None
    for (text, font), box, hgt in zip(lines, boxes, heights, strict=True):
        tw = box[2] - box[0]
        x = pad - box[0] + (0 if align == "left" else (width - 2 * pad - tw) // 2)
        fs = font.size
        if mode == "shadow":
            off = max(2, fs // 18)
            draw.text((x + off, y + off), text, font=font, fill=(0, 0, 0, 200))
            draw.text((x, y), text, font=font, fill=(*ink, 255))
        elif mode == "stroke":
            other = (0, 0, 0) if sum(ink) > 380 else (255, 255, 255)
            draw.text((x, y), text, font=font, fill=(*ink, 255),
                      stroke_width=max(2, fs // 22), stroke_fill=(*other, 255))
        elif mode == "hollow":
            draw.text((x, y), text, font=font, fill=(0, 0, 0, 0),
                      stroke_width=max(2, fs // 28), stroke_fill=(*ink, 255))
        else:
            draw.text((x, y), text, font=font, fill=(*ink, 255))
        y += hgt
    if mode == "hollow":  # stroke only: clear the fill by drawing it transparent
        cut = Image.new("L", layer.size, 0)
        cd = ImageDraw.Draw(cut)
        y = pad
        for (text, font), box, hgt in zip(lines, boxes, heights, strict=True):
            tw = box[2] - box[0]
            x = pad - box[0] + (0 if align == "left" else (width - 2 * pad - tw) // 2)
            cd.text((x, y), text, font=font, fill=255)
            y += hgt
        alpha = layer.getchannel("A")
        inner = cut.filter(ImageFilter.MinFilter(3))
        alpha.paste(0, mask=inner)
        layer.putalpha(alpha)
    return layer, width, height


def _fit(spec: tuple[str, int], lines: list[str], max_w: int, start: int) -> ImageFont.FreeTypeFont:
    size = start
    while size > 14:
        font = _font(spec, size)
        if max(font.getbbox(t)[2] - font.getbbox(t)[0] for t in lines) <= max_w:
            return font
        size = int(size * 0.9)
    return _font(spec, size)


def _perspective(layer: Image.Image, rng: random.Random) -> Image.Image:
    w, h = layer.size
    d = 0.12
    src = [(0, 0), (w, 0), (w, h), (0, h)]
    u = rng.uniform
    dst = [(u(0, d) * w, u(0, d) * h), (w - u(0, d) * w, u(0, d) * h),
           (w - u(0, d) * w, h - u(0, d) * h), (u(0, d) * w, h - u(0, d) * h)]
    # Coefficients mapping output (dst) to input (src) points.
    import numpy as np

    a = []
    b = []
    for (x, y), (u, v) in zip(dst, src, strict=True):
        a.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        a.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        b += [u, v]
    coeffs = np.linalg.solve(np.array(a, float), np.array(b, float))
    return layer.transform((w, h), Image.Transform.PERSPECTIVE, tuple(coeffs),
                           Image.Resampling.BICUBIC)


def draw_poster(poster: Poster, fonts: dict[str, list[tuple[str, int]]], rng: random.Random,
                parts: int) -> Image.Image:
    style = poster.style
    w, h = poster.size
    img, dark = _background(rng, style, poster.size)
    bg = img.resize((1, 1)).getpixel((0, 0))
    cjk = poster.script == "cjk"
    head_font = rng.choice(fonts["cjk" if cjk else "display"])
    sub_font = rng.choice(fonts["cjk" if cjk else "text"])
    poster.fonts = [Path(head_font[0]).name, Path(sub_font[0]).name]
    head, sub = poster.drawn
    head_lines = _wrap(list(head) if cjk else head.split(" "), parts)
    if cjk:
        head_lines = ["".join(x.split(" ")) for x in head_lines]
    margin = int(w * rng.uniform(0.06, 0.12))
    big = int(min(w, h) * rng.uniform(0.09, 0.16))
    hf = _fit(head_font, head_lines, w - 2 * margin, big)
    sf = _fit(sub_font, [sub], w - 2 * margin,
             max(int(min(w, h) * rng.uniform(0.028, 0.04)), int(hf.size * rng.uniform(0.3, 0.5))))
    low = style == "lowcontrast"
    panel_ink = None
    if style == "panels":
        panel = rng.choice(PALETTES_DARK + PALETTES_LIGHT)
        panel_ink = rng.choice(INKS_LIGHT if sum(panel) / 3 < 128 else INKS_DARK)
    ink = panel_ink or _contrasting_ink(rng, bg, dark, low)
    head_layer, hw, hh = _text_layer(poster.size, [(t, hf) for t in head_lines], ink, style, rng,
                                     rng.uniform(1.05, 1.3))
    sub_ink = ink if rng.random() < 0.6 or low else _contrasting_ink(rng, bg, dark, low)
    if panel_ink:
        sub_ink = panel_ink
    sub_layer, sw, sh = _text_layer(poster.size, [(sub, sf)], sub_ink,
                                    "outline" if style == "outline" and rng.random() < 0.3 else "",
                                    rng, 1.1)
    if style == "rotated":
        angle = rng.choice((-1, 1)) * rng.uniform(3, 14)
        if rng.random() < 0.5:
            head_layer = head_layer.rotate(angle, expand=True, resample=Image.Resampling.BICUBIC)
        else:
            head_layer = _perspective(head_layer, rng)
        if rng.random() < 0.5:
            sub_layer = sub_layer.rotate(angle * rng.uniform(0.3, 1), expand=True,
                                         resample=Image.Resampling.BICUBIC)
        hw, hh = head_layer.size
        sw, sh = sub_layer.size
    # Place: headline in the top half or middle, subtitle under it or at the bottom.
    total = hh + sh
    y0 = rng.randint(int(h * 0.04), max(int(h * 0.05), h - total - int(h * 0.2)))
    x_head = max(0, min(w - hw, margin - 40 + rng.randint(0, max(0, w - 2 * margin - hw + 80))))
    y_sub = min(h - sh, y0 + hh + rng.randint(0, int(h * 0.15)))
    x_sub = max(0, min(w - sw, margin - 40 + rng.randint(0, max(0, w - 2 * margin - sw + 80))))
    draw = ImageDraw.Draw(img)
    if style == "panels":
        for (x, y, lw, lh) in ((x_head, y0, hw, hh), (x_sub, y_sub, sw, sh)):
            draw.rounded_rectangle([x + 15, y + 15, x + lw - 15, y + lh - 15],
                                   radius=rng.randint(0, 30), fill=panel)
    if style == "busy":
        _clutter(img, rng, fonts, cjk, dark, [(x_head, y0, hw, hh), (x_sub, y_sub, sw, sh)])
    img.paste(head_layer, (x_head, y0), head_layer)
    img.paste(sub_layer, (x_sub, y_sub), sub_layer)
    if style == "photo" or rng.random() < 0.3:  # a little JPEG-like softness
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0)))
    return img


def _clutter(img: Image.Image, rng: random.Random, fonts: dict[str, list[tuple[str, int]]],
             cjk: bool, dark: bool, keep_out: list[tuple[int, int, int, int]]) -> None:
    """Other text and shapes around the copy: labels, dates, a footer, stripes, dots."""
    w, h = img.size
    draw = ImageDraw.Draw(img)
    for _ in range(rng.randint(3, 8)):
        x0, y0 = rng.randint(0, w), rng.randint(0, h)
        draw.line([(x0, y0), (x0 + rng.randint(-w // 2, w // 2), y0 + rng.randint(-40, 40))],
                  fill=tuple(rng.randint(0, 255) for _ in range(3)), width=rng.randint(2, 12))
    labels = (["门票 ¥80", "3月28日", "地铁2号线", "官方网站", "扫码关注"] if cjk else
              ["TICKETS $25", "MARCH 28", "www.example.com", "No. 7", "FREE ENTRY", "@studio",
               "Doors 7pm", "Est. 1998", "LIMITED", "Line 4"])
    spec = rng.choice(fonts["cjk" if cjk else "text"])
    for _ in range(rng.randint(3, 6)):
        text = rng.choice(labels)
        font = _font(spec, rng.randint(18, 40))
        box = font.getbbox(text)
        for _try in range(20):
            x, y = rng.randint(0, max(1, w - box[2])), rng.randint(0, max(1, h - box[3]))
            if not any(x < kx + kw and x + box[2] > kx and y < ky + kh and y + box[3] > ky
                       for kx, ky, kw, kh in keep_out):
                ink = rng.choice(INKS_LIGHT if dark else INKS_DARK)
                draw.text((x, y), text, font=font, fill=ink)
                keep_out.append((x, y, box[2], box[3]))
                break


# -- the corpus -----------------------------------------------------------------------------


def make_poster(index: int, seed: int, fonts: dict[str, list[tuple[str, int]]], script: str,
                erroneous: bool, style: str) -> tuple[Poster, Image.Image]:
    rng = random.Random(seed)
    size = rng.choice(SIZES)
    if script == "cjk":
        head = rng.choice(CJK_HEADLINES)
        sub = rng.choice(CJK_SUBTITLES)
        parts = rng.choice((1, 1, 2))
        kinds = CJK_ERRORS
    else:
        head, sub, parts = _latin_copy(rng)
        kinds = LATIN_ERRORS
    poster = Poster(f"{script}-{style}-{index:04d}", seed, style, script, size, [head, sub])
    drawn = [head, sub]
    if erroneous:
        for _ in range(50):
            # Every kind in every style: the kind turns with the block and the style.
            block, place = divmod(index, 2 * len(STYLES))
            kind = kinds[rng.randrange(len(kinds))] if index < 0 else \
                kinds[(block + place) % len(kinds)]
            target = 0 if rng.random() < 0.7 else 1
            made = (cjk_error if script == "cjk" else latin_error)(rng, drawn[target], kind)
            if made is not None and made != drawn[target]:
                drawn[target] = made
                poster.error, poster.error_line = kind, target
                break
            index = -1  # that kind did not fit this copy: another, at random
    poster.drawn = drawn
    return poster, draw_poster(poster, fonts, rng, parts)


def make_corpus(out: Path, count: int, seed: int, font_set: str, chinese: int) -> list[Poster]:
    fonts = FONT_SETS[font_set]
    missing = sorted({p for group in fonts.values() for p, _ in group if not Path(p).is_file()})
    if missing:
        raise SystemExit("missing fonts (apt-get install " + " ".join(FONT_PACKAGES) + "):\n  "
                         + "\n  ".join(missing))
    out.mkdir(parents=True, exist_ok=True)
    posters: list[Poster] = []
    for script, n in (("latin", count), ("cjk", chinese)):
        for i in range(n):
            style = STYLES[i % len(STYLES)]
            erroneous = (i // len(STYLES)) % 2 == 1
            poster, img = make_poster(i, seed * 1_000_003 + i * 7919 + (script == "cjk") * 17,
                                      fonts, script, erroneous, style)
            img.save(out / f"{poster.id}.png", optimize=False, compress_level=1)
            posters.append(poster)
    (out / "corpus.json").write_text(json.dumps(
        {"seed": seed, "fonts": font_set, "posters": [asdict(p) for p in posters]},
        ensure_ascii=False, indent=1))
    return posters


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--count", type=int, default=160, help="Latin posters (default 160)")
    parser.add_argument("--chinese", type=int, default=48, help="Chinese posters (default 48)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fonts", choices=sorted(FONT_SETS), default="dev")
    args = parser.parse_args(argv)
    posters = make_corpus(args.out, args.count, args.seed, args.fonts, args.chinese)
    print(f"{len(posters)} posters in {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
