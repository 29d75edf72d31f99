#!/usr/bin/env python3
"""Turns a colored terminal capture (tmux capture-pane -e -p) into a PNG.

Usage: screenshot.py CAPTURE.ansi OUT.png [TITLE]
Rich parses the ANSI colours and lays the text out as SVG; CairoSVG rasterises it.
"""
import sys

import cairosvg
from rich.console import Console
from rich.text import Text

src, out = sys.argv[1], sys.argv[2]
title = sys.argv[3] if len(sys.argv) > 3 else "raftkv lab"
with open(src, encoding="utf-8", errors="replace") as f:
    lines = f.read().rstrip("\n").split("\n")
width = max(len(Text.from_ansi(line).plain) for line in lines)
console = Console(record=True, width=width, file=open("/dev/null", "w"), force_terminal=True, color_system="truecolor")
for line in lines:
    console.print(Text.from_ansi(line), no_wrap=True, crop=True)
svg = console.export_svg(title=title, font_aspect_ratio=0.602)
# Rich asks for Fira Code, which CairoSVG may not find; its fallback is proportional and shifts
# every line holding an arrow or a box. DejaVu Sans Mono (Debian's fonts-dejavu-core) has them all.
svg = svg.replace("Fira Code", "DejaVu Sans Mono")
cairosvg.svg2png(bytestring=svg.encode(), write_to=out, output_width=1600)
