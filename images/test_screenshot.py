#!/usr/bin/env python3
"""The screenshots' text grid is the terminal's: every glyph screenshot.py draws sits at its own
terminal cell, so borders line up whatever widths the font gives ■ □ ✕ ░ ✓.

Renders each committed screen (images/evidence/screens/*.txt, the text of the PNGs beside it) and
a coloured line with wide and odd glyphs, reads every glyph's position back from the SVG, rebuilds
the grid and compares it with the input, cell by cell. Needs rich (pip install rich). Exit 1 on
the first mismatch.
"""
import glob
import os
import sys
import xml.etree.ElementTree as ET

from rich.cells import cell_len
from rich.text import Text

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import screenshot  # noqa: E402

PAD, TOP = 12, 36


def grid_of_input(lines):
    """What a terminal shows: each character at its column (a wide one takes two)."""
    rows = []
    for line in lines:
        row, column = {}, 0
        for ch in Text.from_ansi(line).plain:
            if ch != " ":
                row[column] = ch
            column += max(cell_len(ch), 1)
        rows.append(row)
    return rows


def grid_of_svg(svg, n):
    rows = [dict() for _ in range(n)]
    for text in ET.fromstring(svg).iter("{http://www.w3.org/2000/svg}text"):
        if text.get("font-family") != "DejaVu Sans Mono":
            continue  # the window title
        row = round((float(text.get("y")) - TOP - screenshot.CELL_H * 0.78) / screenshot.CELL_H)
        xs = [float(x) for x in text.get("x").split()]
        chars = text.text or ""
        if len(xs) != len(chars):
            raise AssertionError(f"row {row}: {len(chars)} glyphs but {len(xs)} positions")
        for x, ch in zip(xs, chars):
            column = (x - PAD) / screenshot.CELL_W
            if abs(column - round(column)) > 1e-6:
                raise AssertionError(f"row {row}: {ch!r} at x={x}, between cells")
            rows[row][round(column)] = ch
    return rows


def check(name, lines):
    want = grid_of_input(lines)
    got = grid_of_svg(screenshot.render(lines, name), len(lines))
    for r, (w, g) in enumerate(zip(want, got)):
        if w != g:
            diff = sorted(set(w.items()) ^ set(g.items()))[:4]
            raise AssertionError(f"{name}: row {r} differs from the terminal's: {diff}")


def main():
    screens = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "evidence/screens/*.txt")))
    if not screens:
        print("no screens to check")
        return 1
    for path in screens:
        with open(path, encoding="utf-8") as f:
            check(os.path.basename(path), f.read().rstrip("\n").split("\n"))
    # Colours split a line into runs; a wide glyph takes two cells; the odd glyphs keep one.
    check("synthetic", ["\x1b[1;32m│■□\x1b[0m✕░✓ 漢字 \x1b[2mdim\x1b[0m│", "│" + " " * 12 + "│"])
    # The check has teeth: a renderer that advanced by characters instead of cells would fail.
    check("planted", ["漢│"])
    wide = screenshot.cell_len
    try:
        screenshot.cell_len = lambda s: 1
        check("planted", ["漢│"])
    except AssertionError:
        pass
    else:
        print("planted misalignment was not caught")
        return 1
    finally:
        screenshot.cell_len = wide
    print(f"{len(screens)} screens and a synthetic line: every glyph at its terminal cell")
    return 0


if __name__ == "__main__":
    sys.exit(main())
