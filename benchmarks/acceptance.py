r"""The acceptance list at fixed energies, several models side by side (fastshower.validate.acceptance).

Each model is a report folder of ``fastshower validate --model M --reference REF --out FOLDER`` (its generated
``candidate.h5`` and ``metrics.json``); the figures are computed against the same fixed-energy reference:

    fastshower simulate --geometry clic --particle e- --energy 10,20,50,100,200,500 --n 1800 --seed 32 --out ref.h5
    fastshower validate --reference ref.h5 --model 3dgan-clic-electrons --out val_gan \
        --energy-bins 9,15,35,75,150,350,510
    fastshower validate --reference ref.h5 --model 3dvae-clic-electrons --out val_vae \
        --energy-bins 9,15,35,75,150,350,510
    python benchmarks/acceptance.py --reference ref.h5 3dgan=val_gan 3dvae=val_vae [--write docs/models/x.md]

Prints the table (markdown) and each model's classifier AUCs (low-level / high-level, with their floors).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fastshower.validate.acceptance import acceptance_rows, count_passed, markdown_table
from fastshower.validate.observables import compute_observables_file


def main(argv: list[str] | None = None) -> int:
    """Print (and optionally write) the side-by-side acceptance table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, required=True, help="fixed-energy Monte Carlo sample")
    parser.add_argument("models", nargs="+", metavar="NAME=REPORT_FOLDER")
    parser.add_argument("--write", type=Path, help="also write the table to this markdown file")
    args = parser.parse_args(argv)
    reference = compute_observables_file(args.reference)
    tables, lines = {}, []
    for item in args.models:
        name, _, folder = item.partition("=")
        folder_path = Path(folder)
        if not (folder_path / "candidate.h5").exists():
            print(f"{folder}: no candidate.h5 (a folder of fastshower validate --model)", file=sys.stderr)
            return 2
        tables[name] = acceptance_rows(reference, compute_observables_file(folder_path / "candidate.h5"))
        passed, total = count_passed(tables[name])
        auc = json.loads((folder_path / "metrics.json").read_text()).get("classifier", {})
        aucs = ", ".join(f"{level}-level AUC {r['value']['auc']:.3f} (floor {r['floor']['auc']:.3f})"
                         for level, r in auc.items())
        lines.append(f"- {name}: {passed} of {total} figures within their bars; {aucs or 'no classifier run'}")
    text = markdown_table(tables) + "\n\n" + "\n".join(lines) + "\n"
    print(text)
    if args.write:
        from fastshower.atomic import atomic_write_text

        atomic_write_text(args.write, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
