"""Write docs/results.md sections from run directories (never typed by hand).

Usage: python scripts/results.py RUN_DIR [RUN_DIR ...] [--out docs/results.md] [--title TITLE]
Each run contributes one row: its final accuracy (all/many/medium/few), NC metrics and wall time.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

KEYS = [
    ("acc/all", "acc all"),
    ("acc/many", "many"),
    ("acc/medium", "medium"),
    ("acc/few", "few"),
    ("nc/nc1", "NC1"),
    ("nc/nc2_etf", "NC2 (ETF)"),
    ("nc/nc3", "NC3"),
    ("nc_test/nc4", "NC4 (test)"),
    ("nc/groups/few/minority_collapse", "minority collapse (few)"),
    ("nc/align/ee_ratio_mean", "EE ratio mean"),
]


FED_KEYS = [
    ("acc/all", "generic acc"),
    ("fed/personal_acc", "personal acc"),
    ("fed/missing_class_cos", "missing-class cos"),
    ("nc/nc1", "NC1"),
    ("nc/nc3", "NC3"),
]


def fmt(v) -> str:
    if v is None:
        return "-"
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def table(run_dirs: list[Path], keys: list[tuple[str, str]] = KEYS) -> str:
    lines = [
        "| run | epochs | " + " | ".join(t for _, t in keys) + " | wall time |",
        "|---" * (len(keys) + 3) + "|",
    ]
    for rd in run_dirs:
        rows = [json.loads(x) for x in (rd / "metrics.jsonl").read_text().splitlines() if x.strip()]
        last = rows[-1]
        wall = f"{last['wall_time']:.0f} s" if isinstance(last.get("wall_time"), float) else "-"
        ckpt = rd / "checkpoints" / "last.pt"
        if wall == "-" and ckpt.is_file():
            import torch

            wall = f"{torch.load(ckpt, map_location='cpu', weights_only=False).get('elapsed', 0):.0f} s"
        lines.append(
            f"| {rd.name} | {last['epoch']} | "
            + " | ".join(fmt(last.get(k)) for k, _ in keys)
            + f" | {wall} |"
        )
    return "\n".join(lines)


def write_block(out: Path | None, name: str, text: str) -> None:
    """Print ``text``, or put it between ``<!-- name:begin -->`` and ``<!-- name:end -->`` in ``out``
    (replacing what was there; appended at the end the first time)."""
    if out is None:
        print(text)
        return
    doc = out.read_text()
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    block = f"{begin}\n{text}\n{end}"
    if begin in doc:
        doc = doc.split(begin)[0] + block + doc.split(end, 1)[1]
    else:
        doc = doc.rstrip() + "\n\n" + block + "\n"
    out.write_text(doc)
    print(f"wrote {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, default=Path("docs/results.md"))
    ap.add_argument("--title", default="Results")
    ap.add_argument("--note", default="")
    ap.add_argument("--fed", action="store_true", help="federated runs: generic/personal accuracy columns")
    args = ap.parse_args()
    section = f'## {args.title}\n\n{args.note}\n\n{table(args.runs, FED_KEYS if args.fed else KEYS)}\n\nRegenerate: `python scripts/results.py {" ".join(str(r) for r in args.runs)}{" --fed" if args.fed else ""} --title "{args.title}"`\n'
    text = (
        args.out.read_text()
        if args.out.is_file()
        else "# Results measured with nclab\n\nEvery table below is generated from run directories by `scripts/results.py`.\n\n"
    )
    marker = f"## {args.title}\n"
    if marker in text:
        head, rest = text.split(marker, 1)
        tail = rest.split("\n## ", 1)
        text = head + section + ("\n## " + tail[1] if len(tail) > 1 else "")
    else:
        text = text.rstrip() + "\n\n" + section
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
