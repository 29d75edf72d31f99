"""The layering of README "Design", as one rule: a module of src/ names (through `crate::` in the
library, `raftkv::` in main.rs) only modules listed before it in src/lib.rs. Also checks that
lib.rs declares exactly the listed modules and that README's Design table is the same list.
Prints each violation with file:line; exits 1 if there is any."""
import pathlib
import re
import sys

root = pathlib.Path(__file__).resolve().parent.parent
lib = (root / "src/lib.rs").read_text()
order = re.findall(r"^//! - \[`(\w+)`\]", lib, re.M)
declared = re.findall(r"^pub mod (\w+);", lib, re.M)
problems = []
if declared != order:
    problems.append(f"src/lib.rs: `pub mod` order {declared} is not the listed order {order}")

readme = (root / "README.md").read_text()
design = readme.split("## Design", 1)[1]
table = re.findall(r"^\| `(\w+)` \|", design, re.M)
if table != order:
    problems.append(f"README.md: Design table lists {table}, src/lib.rs lists {order}")

rank = {m: i for i, m in enumerate(order)}
path = re.compile(r"\b(?:crate|raftkv)::(\w+)")
for module in order:
    base = root / "src" / module
    files = sorted(base.rglob("*.rs")) if base.is_dir() else [base.with_suffix(".rs")]
    for f in files:
        for n, line in enumerate(f.read_text().splitlines(), 1):
            if line.lstrip().startswith("//"):
                continue
            for used in path.findall(line):
                if used in rank and rank[used] > rank[module]:
                    rel = f.relative_to(root)
                    problems.append(f"{rel}:{n}: {module} uses {used}, a layer above it: {line.strip()}")

for p in problems:
    print("layering violation:", p)
sys.exit(1 if problems else 0)
