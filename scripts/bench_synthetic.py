"""Benchmark: composed synthetic images per second on one core, projected to the paper's set.

    python scripts/bench_synthetic.py [--objects 2] [--cores 16] [--workdir /tmp/bench_synthetic]

Renders the paper's Table 1 grids (512x512 canvas, JPEG q95, 2 backgrounds per object) for a few
full-resolution demo cut-outs, one factor at a time in this process (one core), and projects the
wall time of 614 objects on N cores (shards are independent jobs, so the projection is linear).
"""

import argparse
import json
import shutil
import time
from pathlib import Path

import pandas as pd

from oodbench.datasets.demo import DEMO_SUPERCLASSES, load_demo_photo
from oodbench.synthetic import compose
from oodbench.synthetic.demo_sources import demo_cutout, prepare_demo_backgrounds
from oodbench.synthetic.grid import factor_specs
from oodbench.synthetic.sources import finish_objects, object_row, reset_folder, save_png

PAPER_OBJECTS, TABLE_1 = 614, {"size": 92_884, "location": 479_184, "rotation": 39_540}
FACTORS = {
    "size": {"area_percent": {"start": 1, "stop": 100, "step": 1}, "angle": [0], "position": "centre", "min_visible": 0.95, "group_by": ["area"]},
    "location": {"area_percent": [20], "angle": [0], "position": {"divisions": 20, "placement": "centres"}, "min_visible": 0.0, "group_by": ["x", "y"]},
    "rotation": {"area_percent": [20, 50, 80, 100], "angle": {"start": 1, "stop": 341, "step": 20}, "position": "centre", "min_visible": 0.95, "group_by": ["angle"]},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=2)
    parser.add_argument("--cores", type=int, default=16)
    parser.add_argument("--workdir", default="/tmp/bench_synthetic")
    args = parser.parse_args()
    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    objects_dir = work / "objects"
    reset_folder(objects_dir)
    rows = []
    for spec in DEMO_SUPERCLASSES[: args.objects]:
        cutout = demo_cutout(load_demo_photo(spec.superclass), max_side=600)
        save_png(cutout, objects_dir / f"cutouts/{spec.superclass}.png")
        rows.append(object_row(spec.superclass, spec.superclass, spec.imagenet, f"cutouts/{spec.superclass}.png", cutout))
    finish_objects(rows, objects_dir)
    prepare_demo_backgrounds(work / "backgrounds", (512, 512), work / "backgrounds.csv")
    synthetic = {"canvas": [512, 512], "seed": 0, "backgrounds_per_object": 2, "image_format": "jpg", "jpeg_quality": 95, "factors": FACTORS}
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
            "table1_images": TABLE_1[factor],
            f"projected_s_{PAPER_OBJECTS}_objects_{args.cores}_cores": round(projected, 1),
        })
    print(pd.DataFrame(results).to_string(index=False))
    print(json.dumps({"projected_total_minutes": round(total_projected / 60, 1), "cores": args.cores}))


if __name__ == "__main__":
    main()
