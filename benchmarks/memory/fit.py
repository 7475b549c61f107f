"""Compare the memory model (liverl.memory.terms) with every stored H200 measurement, and re-derive the fitted
coefficients (one-dimensional searches, each on the points its term decides).

Usage: python benchmarks/memory/fit.py [--fit]   (prints each point's predicted/measured peak and the worst error)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from liverl.memory import arch, terms

RESULTS = Path(__file__).resolve().parent / "results_h200.json"


def spec_for(row: dict) -> terms.StepSpec:
    """The model's input for one stored measurement (measure.py's settings, its torch linear-attention fallback)."""
    a = arch.load(arch.bundled(row["arch"])).text_only().with_layers(row["layers"])
    width = 4 if row["setting"] == "fp32_master" else 2
    return terms.StepSpec(arch=a, tokens=row["tokens"], shards=1, param_bytes=width, optim_bytes=width,
                          master_weights=row["setting"] == "fp32_master", lm_head_chunk=row["lm_head_chunk"],
                          reduce_fp32=row["setting"] == "fp32_master", linear_impl="torch")


def points() -> list[dict]:
    return [r for r in json.loads(RESULTS.read_text())["steps"] if r["status"] == "ok"]


def errors(rows: list[dict]) -> list[tuple[dict, dict, float]]:
    out = []
    for r in rows:
        pred = terms.breakdown(spec_for(r))
        out.append((r, pred, pred["peak_bytes"] / r["peak_bytes"] - 1))
    return out


def fit(key: str, grid: list[float], rows: list[dict]) -> float:
    best = None
    for v in grid:
        terms.COEF[key] = v
        worst = max(abs(e) for _, _, e in errors(rows))
        if best is None or worst < best[1]:
            best = (v, worst)
    terms.COEF[key] = best[0]
    return best[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fit", action="store_true", help="search the MoE and linear-attention coefficients first")
    args = ap.parse_args()
    rows = points()
    if args.fit:
        moe = [r for r in rows if r["arch"] == "qwen3_30b_a3b" and r["tokens"] >= 65536]
        gdn = [r for r in rows if r["arch"] == "qwen35_35b_a3b" and r["tokens"] >= 65536]
        print("moe", fit("moe", [x / 20 for x in range(10, 80)], moe))
        print("gdn_torch", fit("gdn_torch", [x / 40 for x in range(10, 120)], gdn))
    res = errors(rows)
    for r, p, e in res:
        print(f"{r['arch']:15s} L{r['layers']} {r['setting']:11s} chunk {r['lm_head_chunk']:5d} T {r['tokens']:6d} "
              f"measured {r['peak_bytes'] / 2**30:7.2f} GiB predicted {p['peak_bytes'] / 2**30:7.2f} "
              f"({p['peak_phase']:9s}) {e:+.1%}")
    worst = max(res, key=lambda x: abs(x[2]))
    print(f"{len(res)} points, worst {worst[2]:+.1%} ({worst[0]['arch']} T={worst[0]['tokens']})")


if __name__ == "__main__":
    main()
