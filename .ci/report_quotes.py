#!/usr/bin/env python3
"""Every quoted output in Report.md is in the evidence it names.

Each fenced block in Report.md must be preceded by a line `<!-- evidence: PATH -->` naming a
committed file (an `images/evidence/*.md` written by `raftkv scenario`, or the text of a
screenshot, `images/evidence/screens/NAME.txt`, written with it by `images/regenerate.sh`).
Every line of the block must appear in that file, in the same order: verbatim, or as a part of
one of its lines when the Report trims a status (a line may end in ` ...` where it leaves
fields out, and a line that is only `...` skips lines). Exit 1 with what is missing otherwise.
"""
import re
import sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent
report = (root / "Report.md").read_text()
lines = report.splitlines()
problems = []
checked = 0
i = 0
while i < len(lines):
    if not lines[i].startswith("```"):
        i += 1
        continue
    start = i
    i += 1
    block = []
    while i < len(lines) and not lines[i].startswith("```"):
        block.append(lines[i])
        i += 1
    i += 1
    before = [l for l in lines[:start] if l.strip()]
    marker = re.fullmatch(r"<!-- evidence: (\S+) -->", before[-1].strip()) if before else None
    if not marker:
        problems.append(f"Report.md:{start + 1}: a quoted block names no evidence (<!-- evidence: PATH --> before it)")
        continue
    source = root / marker.group(1)
    if not source.is_file():
        problems.append(f"Report.md:{start + 1}: {marker.group(1)} is not a committed file")
        continue
    evidence = source.read_text().splitlines()
    at = 0
    for n, line in enumerate(block):
        want = line.rstrip()
        if want.strip() == "..." or not want.strip():
            continue
        part = want[:-4].rstrip() if want.endswith(" ...") else want
        found = next((k for k in range(at, len(evidence)) if part.strip() in evidence[k]), None)
        if found is None:
            problems.append(
                f"Report.md:{start + 2 + n}: not in {marker.group(1)} (after its line {at + 1}): {want!r}"
            )
            break
        at = found + 1
    checked += 1

for p in problems:
    print(p)
print(f"{checked} quoted blocks checked, {len(problems)} problem(s)")
sys.exit(1 if problems or checked == 0 else 0)
