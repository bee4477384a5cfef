"""Benchmark: composed synthetic images per second on one core, projected to the paper's set.

    python scripts/bench_synthetic.py [--objects 2] [--cores 16] [--workdir /tmp/bench_synthetic] [--config config.yaml]

Renders the grids of the config's ``synthetic:`` block (config.yaml: the paper's Table 1, 512x512
canvas, JPEG q95, 2 backgrounds per object) for a few full-resolution demo cut-outs, one factor at a time in this process (one core), and projects the
wall time of 614 objects on N cores (shards are independent jobs, so the projection is linear).
"""

import argparse
import json
import shutil
import time
from pathlib import Path

import pandas as pd
import yaml

from oodbench.synthetic import compose
from oodbench.synthetic.demo_sources import prepare_demo_backgrounds, prepare_demo_objects
from oodbench.synthetic.grid import factor_specs

REPO = Path(__file__).resolve().parents[1]
PAPER_OBJECTS, TABLE_1 = 614, {"size": 92_884, "location": 479_184, "rotation": 39_540}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=2)
    parser.add_argument("--cores", type=int, default=16)
    parser.add_argument("--workdir", default="/tmp/bench_synthetic")
    parser.add_argument("--config", default=str(REPO / "config.yaml"), help="config whose synthetic: block to render")
    args = parser.parse_args()
    synthetic = yaml.safe_load(Path(args.config).read_text())["synthetic"]
    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    objects_dir = work / "objects"
    prepare_demo_objects(objects_dir, max_side=600, limit=args.objects)
    prepare_demo_backgrounds(work / "backgrounds", compose.canvas_size(synthetic), work / "backgrounds.csv")
    results, total_projected = [], 0.0
    for factor, spec in factor_specs(synthetic).items():
        start, cpu_start = time.perf_counter(), time.process_time()
        part = compose.compose_shard(factor, 0, 1, objects_dir / "objects.csv", work / "backgrounds.csv", synthetic, work / f"{factor}.shard", progress=False)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        # CPU time: on a shared machine wall time also counts other users' load.
        per_object = cpu / args.objects
        projected = per_object * PAPER_OBJECTS / args.cores
        total_projected += projected
        results.append({
            "factor": factor, "grid": spec.grid_size, "images": len(part), "wall_s": round(seconds, 2), "cpu_s": round(cpu, 2),
            "images_per_s_per_core": round(len(part) / cpu, 1),
            "table1_images": TABLE_1.get(factor),
            f"projected_s_{PAPER_OBJECTS}_objects_{args.cores}_cores": round(projected, 1),
        })
    print(pd.DataFrame(results).to_string(index=False))
    print(json.dumps({"projected_total_minutes": round(total_projected / 60, 1), "cores": args.cores}))


if __name__ == "__main__":
    main()
