#!/usr/bin/env python3
"""Turns a colored terminal capture (tmux capture-pane -e -p) into a PNG that looks like the terminal.

Usage: screenshot.py CAPTURE.ansi OUT.png [TITLE]

Every character is drawn at its own cell of the terminal's grid (SVG `x` lists, one position per
glyph), so a glyph that the font draws wider or narrower than a cell (■ □ ✕ ░ ✓, or a fallback
font's) cannot shift the rest of its line: borders stay aligned whatever the font. Rich only
parses the ANSI colours; CairoSVG rasterises. A terminal-like palette, DejaVu Sans Mono.
"""
import sys
from html import escape

from rich.cells import cell_len
from rich.style import Style
from rich.terminal_theme import SVG_EXPORT_THEME as THEME
from rich.text import Text

CELL_W, CELL_H, FONT = 9.6, 19.0, 16
FG, BG = tuple(THEME.foreground_color), tuple(THEME.background_color)


def rgb(color, default, foreground=True):
    """A rich color as an SVG colour, the 16 standard colours as a dark terminal theme shows them."""
    if color is None or color.is_default:
        return "#%02x%02x%02x" % default
    t = color.get_truecolor(THEME, foreground=foreground)
    return "#%02x%02x%02x" % (t.red, t.green, t.blue)


def cells(line):
    """(column, character, style) for every character of an ANSI line, by terminal cells."""
    text = Text.from_ansi(line)
    styles = [Style()] * len(text.plain)
    for span in text.spans:
        style = span.style if isinstance(span.style, Style) else Style.parse(str(span.style))
        for i in range(span.start, min(span.end, len(styles))):
            styles[i] = styles[i] + style
    column = 0
    for ch, style in zip(text.plain, styles):
        yield column, ch, style
        column += max(cell_len(ch), 1)


def runs(line):
    """Runs of characters sharing a style: (first column, [(column, char)], style)."""
    run, current = [], None
    for column, ch, style in cells(line):
        if current is not None and style != current:
            yield run[0][0], run, current
            run = []
        run.append((column, ch))
        current = style
    if run:
        yield run[0][0], run, current


def render(lines, title):
    width = max((sum(max(cell_len(c), 1) for c in Text.from_ansi(l).plain) for l in lines), default=1)
    top, pad = 36, 12
    w, h = width * CELL_W + 2 * pad, len(lines) * CELL_H + top + pad
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w:.0f}" height="{h:.0f}" viewBox="0 0 {w:.0f} {h:.0f}">',
        f'<rect width="100%" height="100%" rx="8" fill="#{BG[0]:02x}{BG[1]:02x}{BG[2]:02x}"/>',
    ]
    for i, colour in enumerate(["#ff5f57", "#febc2e", "#28c840"]):
        out.append(f'<circle cx="{pad + 8 + i * 22}" cy="18" r="6" fill="{colour}"/>')
    out.append(
        f'<text x="{w / 2:.1f}" y="23" fill="#cccccc" font-family="DejaVu Sans" font-size="15" '
        f'font-weight="bold" text-anchor="middle">{escape(title)}</text>'
    )
    for row, line in enumerate(lines):
        y = top + row * CELL_H
        for first, run, style in runs(line):
            fg, bg = style.color, style.bgcolor
            if style.reverse:
                fg, bg = bg, fg
            x0 = pad + first * CELL_W
            last = run[-1][0] + max(cell_len(run[-1][1]), 1)
            if bg is not None and not bg.is_default:
                out.append(
                    f'<rect x="{x0:.1f}" y="{y:.1f}" width="{(last - first) * CELL_W:.1f}" '
                    f'height="{CELL_H:.1f}" fill="{rgb(bg, BG, False)}"/>'
                )
            glyphs = [(c, ch) for c, ch in run if ch != " "]
            if not glyphs:
                continue
            xs = " ".join(f"{pad + c * CELL_W:.1f}" for c, _ in glyphs)
            chars = escape("".join(ch for _, ch in glyphs))
            weight = ' font-weight="bold"' if style.bold else ""
            colour = rgb(fg, FG)
            if style.dim:
                colour = colour + '" fill-opacity="0.6'
            out.append(
                f'<text x="{xs}" y="{y + CELL_H * 0.78:.1f}" fill="{colour}" font-size="{FONT}" '
                f'font-family="DejaVu Sans Mono"{weight} xml:space="preserve">{chars}</text>'
            )
    out.append("</svg>")
    return "\n".join(out)


if __name__ == "__main__":
    src, dest = sys.argv[1], sys.argv[2]
    title = sys.argv[3] if len(sys.argv) > 3 else "raftkv lab"
    with open(src, encoding="utf-8", errors="replace") as f:
        lines = f.read().rstrip("\n").split("\n")
    import cairosvg  # only to rasterise: images/test_screenshot.py checks the SVG without it

    cairosvg.svg2png(bytestring=render(lines, title).encode(), write_to=dest, output_width=1600)
