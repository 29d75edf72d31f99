"""The layering of README "Design", as one rule: a module names (through `crate::` in a library,
`raftkv::` in main.rs) only modules listed before it in src/lib.rs. The service's modules live in
service/src (crate raftkv-service, whose lib.rs lists them in the same order) and are re-exported
by src/lib.rs; the lab and tooling live in src. Also checks that both lib.rs files declare
exactly the listed modules and that README's Design table is the same list.
Prints each violation with file:line; exits 1 if there is any."""
import pathlib
import re
import sys

root = pathlib.Path(__file__).resolve().parent.parent
lib = (root / "src/lib.rs").read_text()
order = re.findall(r"^//! - \[`(\w+)`\]", lib, re.M)
reexport = re.search(r"^pub use raftkv_service::\{([^}]*)\};", lib, re.M | re.S)
service_list = re.findall(r"\w+", reexport.group(1)) if reexport else []
declared = service_list + re.findall(r"^pub mod (\w+);", lib, re.M)
problems = []
if declared != order:
    problems.append(f"src/lib.rs: declaration order {declared} is not the listed order {order}")
service = set(service_list)
service_lib = (root / "service/src/lib.rs").read_text()
service_declared = re.findall(r"^pub mod (\w+);", service_lib, re.M)
service_order = [m for m in order if m in service]
if service_declared != service_order:
    problems.append(
        f"service/src/lib.rs: `pub mod` order {service_declared} is not {service_order}"
    )
if any(order.index(m) > order.index(t) for m in service for t in order if t not in service):
    problems.append("src/lib.rs: the service's modules must come before the lab's and tooling's")

readme = (root / "README.md").read_text()
design = readme.split("## Design", 1)[1]
table = re.findall(r"^\| `(\w+)` \|", design, re.M)
if table != order:
    problems.append(f"README.md: Design table lists {table}, src/lib.rs lists {order}")

rank = {m: i for i, m in enumerate(order)}
path = re.compile(r"\b(?:crate|raftkv)::(\w+)")
for module in order:
    base = root / ("service/src" if module in service else "src") / module
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
