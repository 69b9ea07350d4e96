#!/usr/bin/env python3
"""Renders a tmux pane, captured with colours, as a PNG: the README's screenshot.

    tmux capture-pane -e -p -t SESSION > pane.ans
    python3 bench/screenshot.py pane.ans docs/screenshot.png

Needs Pillow and the DejaVu Sans Mono font (Debian: fonts-dejavu-core). Half-block
characters are drawn as two filled rectangles so images stay sharp at any font.
"""
import re
import sys

from PIL import Image, ImageDraw, ImageFont

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"
BOLD = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf"
CELL_W, CELL_H, SIZE = 10, 20, 16
BASE16 = [
    (0, 0, 0), (205, 49, 49), (13, 188, 121), (229, 229, 16), (36, 114, 200), (188, 63, 188), (17, 168, 205),
    (229, 229, 229), (102, 102, 102), (241, 76, 76), (35, 209, 139), (245, 245, 67), (59, 142, 234),
    (214, 112, 214), (41, 184, 219), (255, 255, 255),
]
DEFAULT_FG, DEFAULT_BG = (220, 220, 220), (24, 24, 28)


def palette(n):
    if n < 16:
        return BASE16[n]
    if n < 232:
        n -= 16
        steps = [0, 95, 135, 175, 215, 255]
        return steps[n // 36], steps[n // 6 % 6], steps[n % 6]
    v = 8 + 10 * (n - 232)
    return v, v, v


def sgr(params, state):
    codes = [int(p) if p else 0 for p in params.split(";")] if params else [0]
    i = 0
    while i < len(codes):
        c = codes[i]
        if c == 0:
            state.update(fg=None, bg=None, bold=False, reverse=False)
        elif c == 1:
            state["bold"] = True
        elif c == 22:
            state["bold"] = False
        elif c == 7:
            state["reverse"] = True
        elif c == 27:
            state["reverse"] = False
        elif 30 <= c <= 37:
            state["fg"] = BASE16[c - 30]
        elif 90 <= c <= 97:
            state["fg"] = BASE16[c - 90 + 8]
        elif 40 <= c <= 47:
            state["bg"] = BASE16[c - 40]
        elif 100 <= c <= 107:
            state["bg"] = BASE16[c - 100 + 8]
        elif c == 39:
            state["fg"] = None
        elif c == 49:
            state["bg"] = None
        elif c in (38, 48) and i + 1 < len(codes):
            key = "fg" if c == 38 else "bg"
            if codes[i + 1] == 5 and i + 2 < len(codes):
                state[key] = palette(codes[i + 2])
                i += 2
            elif codes[i + 1] == 2 and i + 4 < len(codes):
                state[key] = tuple(codes[i + 2:i + 5])
                i += 4
        i += 1


def main(src, dst):
    text = open(src, encoding="utf-8").read().rstrip("\n").split("\n")
    rows = []
    state = {"fg": None, "bg": None, "bold": False, "reverse": False}
    for line in text:
        cells = []
        for m in re.finditer(r"\x1b\[([0-9;]*)m|\x1b\[[0-9;?]*[A-Za-z]|(.)", line):
            if m.group(2) is not None:
                fg, bg = state["fg"] or DEFAULT_FG, state["bg"] or DEFAULT_BG
                if state["reverse"]:
                    fg, bg = bg, fg
                cells.append((m.group(2), fg, bg, state["bold"]))
            elif m.group(0).endswith("m"):
                sgr(m.group(1), state)
        rows.append(cells)
    width = max(len(r) for r in rows)
    img = Image.new("RGB", (width * CELL_W, len(rows) * CELL_H), DEFAULT_BG)
    draw = ImageDraw.Draw(img)
    font, bold = ImageFont.truetype(FONT, SIZE), ImageFont.truetype(BOLD, SIZE)
    for y, cells in enumerate(rows):
        for x, (ch, fg, bg, is_bold) in enumerate(cells):
            box = (x * CELL_W, y * CELL_H, (x + 1) * CELL_W - 1, (y + 1) * CELL_H - 1)
            draw.rectangle(box, fill=bg)
            half = y * CELL_H + CELL_H // 2
            if ch == "▀":
                draw.rectangle((box[0], box[1], box[2], half - 1), fill=fg)
            elif ch == "▄":
                draw.rectangle((box[0], half, box[2], box[3]), fill=fg)
            elif ch == "█":
                draw.rectangle(box, fill=fg)
            elif ch != " ":
                draw.text((box[0], box[1] + 1), ch, font=bold if is_bold else font, fill=fg)
    img.save(dst)
    print(f"{dst}: {img.width}x{img.height}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
