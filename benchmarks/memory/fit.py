"""Compare the memory model (liverl.memory.terms) with every stored H200 measurement, and re-derive the fitted
coefficients (one-dimensional searches, each on the training points its term decides).

A held-out share of the measured points (HELD_OUT) is never given to a fit: tests/test_memory.py re-derives the
coefficients from the training points only and checks the model on the held-out ones.

Usage: python benchmarks/memory/fit.py [--fit]   (prints each point's predicted/measured peak and the worst error,
training and held-out points apart)
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


# (arch, layers, setting, lm_head_chunk, tokens) of the points no fit sees: every architecture and setting, a
# chunked and an unchunked head, and one point each fitted term decides (MoE: qwen3_30b_a3b, linear attention:
# qwen35_35b_a3b, both at >= 65536 tokens)
HELD_OUT = {
    ("qwen25_0p5b", 4, "fp32_master", 2048, 32768),
    ("qwen25_0p5b", 8, "fp32_master", 8192, 131072),
    ("qwen25_0p5b", 4, "bf16", 8192, 65536),
    ("qwen3_30b_a3b", 2, "fp32_master", 0, 8192),
    ("qwen3_30b_a3b", 2, "bf16", 8192, 131072),
    ("qwen35_35b_a3b", 2, "fp32_master", 8192, 131072),
    ("qwen35_35b_a3b", 2, "bf16", 8192, 16384),
}


def point_id(row: dict) -> tuple:
    return row["arch"], row["layers"], row["setting"], row["lm_head_chunk"], row["tokens"]


def points() -> list[dict]:
    return [r for r in json.loads(RESULTS.read_text())["steps"] if r["status"] == "ok"]


def split(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """(training points, held-out points): a fit is given only the first."""
    return [r for r in rows if point_id(r) not in HELD_OUT], [r for r in rows if point_id(r) in HELD_OUT]


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


def refit(train: list[dict]) -> dict[str, float]:
    """Search the MoE and linear-attention (torch fallback) coefficients on training points only (sets terms.COEF).
    FLA's coefficient (gdn_fla) is not fitted: no point here ran FLA's kernels (results_h200.json env "fla": false), and
    the verl point that did (verl_points.json moe35b_fsdp_6k) peaked in the optimizer step."""
    assert not any(point_id(r) in HELD_OUT for r in train), "a held-out point was given to the fit"
    moe = [r for r in train if r["arch"] == "qwen3_30b_a3b" and r["tokens"] >= 65536]
    gdn = [r for r in train if r["arch"] == "qwen35_35b_a3b" and r["tokens"] >= 65536]
    return {"moe": fit("moe", [x / 20 for x in range(10, 80)], moe),
            "gdn_torch": fit("gdn_torch", [x / 40 for x in range(10, 120)], gdn)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fit", action="store_true", help="search the MoE and linear-attention coefficients first")
    args = ap.parse_args()
    train, held = split(points())
    if args.fit:
        for key, value in refit(train).items():
            print(key, value)
    for name, rows in (("training", train), ("held-out", held)):
        res = errors(rows)
        for r, p, e in res:
            print(f"{name:8s} {r['arch']:15s} L{r['layers']} {r['setting']:11s} chunk {r['lm_head_chunk']:5d} "
                  f"T {r['tokens']:6d} measured {r['peak_bytes'] / 2**30:7.2f} GiB predicted "
                  f"{p['peak_bytes'] / 2**30:7.2f} ({p['peak_phase']:9s}) {e:+.1%}")
        worst = max(res, key=lambda x: abs(x[2]))
        print(f"{name}: {len(res)} points, worst {worst[2]:+.1%} ({worst[0]['arch']} T={worst[0]['tokens']})")


if __name__ == "__main__":
    main()
