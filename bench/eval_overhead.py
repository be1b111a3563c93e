"""evaluate.py against a direct lm_eval.simple_evaluate call: same tiny export, tasks, limit, batch size.

Both run as fresh processes (imports included), alternating, REPEATS times each; the overhead is
(ours - direct) / ours of wall time, on the best run of each. Target: under 10%.

    python bench/eval_overhead.py [--limit 100] [--repeats 2] [--wandb]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TASKS = ["SST", "PIQA", "WinoGrande"]

DIRECT = """
import sys, lm_eval
from lm_eval.tasks import TaskManager
export, tasks_dir, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
r = lm_eval.simple_evaluate(model="hf", model_args={"pretrained": export, "backend": "causal", "device": "cpu"},
                            tasks=["sst2_local", "piqa_local", "winogrande_local"], limit=limit, batch_size=8,
                            bootstrap_iters=1000, random_seed=1234, numpy_random_seed=1234, torch_random_seed=1234,
                            task_manager=TaskManager(include_path=tasks_dir, include_defaults=False))
print({t: v.get("acc_norm,none", v.get("acc,none")) for t, v in r["results"].items()})
"""


def timed(cmd, env) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of the child, its stdout): CPU time is robust to other load on the machine."""
    t, r = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    r2 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if res.returncode != 0:
        sys.exit(f"{cmd[:3]} failed:\n{res.stderr[-2000:]}")
    return time.perf_counter() - t, (r2.ru_utime - r.ru_utime) + (r2.ru_stime - r.ru_stime), res.stdout


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--wandb", action="store_true", help="keep W&B on (offline) in evaluate.py")
    args = p.parse_args()
    from lamini_lm import config
    from lamini_lm.evaluation import local_tasks, suite, tiny
    from lamini_lm.evaluation.suite import SuiteSpec

    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "WANDB_MODE": "offline", "TOKENIZERS_PARALLELISM": "false"}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        export = tiny.ensure_export(tmp / "models", "gpt2")
        local = config.typed(config.compose("evaluate", ["eval=lamini15_local"]).eval, SuiteSpec, "eval")
        specs = suite.select(local.tasks, TASKS)
        tasks_dir = local_tasks.write(specs, tmp / "direct_tasks", local.name)
        ours_t, direct_t, ours_cpu, direct_cpu = [], [], [], []
        for k in range(args.repeats):
            ours = [sys.executable, "evaluate.py", f"models={export}", "eval=lamini15_local", f"tasks=[{','.join(TASKS)}]",
                    f"lm_eval.limit={args.limit}", "wrapper=none", f"wandb.enabled={str(args.wandb).lower()}",
                    f"hydra.run.dir={tmp / f'ours{k}'}"]
            t, c, out = timed(ours, env)
            ours_t.append(t)
            ours_cpu.append(c)
            t, c, out_direct = timed([sys.executable, "-c", DIRECT, str(export), str(tasks_dir), str(args.limit)], env)
            direct_t.append(t)
            direct_cpu.append(c)
        best_ours, best_direct = min(ours_t), min(direct_t)
        print(f"tasks: {', '.join(TASKS)} (offline suite), limit {args.limit} docs each, tiny GPT-2, batch 8, "
              f"W&B {'offline' if args.wandb else 'off'}")
        print(f"direct simple_evaluate: {' '.join(f'{t:.1f}s' for t in direct_t)}  -> {out_direct.strip()}")
        rows = [line.split()[-3:] for line in out.splitlines()]  # evaluate.py's "model paper task metric score"
        scores = [" ".join(r) for r in rows if len(r) == 3 and r[0].endswith("_local") and r[1] in ("acc", "acc_norm")]
        print(f"evaluate.py           : {' '.join(f'{t:.1f}s' for t in ours_t)}  -> {'; '.join(scores)}")
        print(f"overhead: {best_ours - best_direct:+.1f}s = {100 * (best_ours - best_direct) / best_ours:.1f}% "
              "of evaluate.py's wall time (best of each)")
        co, cd = min(ours_cpu), min(direct_cpu)
        print(f"CPU time: direct {' '.join(f'{c:.1f}s' for c in direct_cpu)}, evaluate.py "
              f"{' '.join(f'{c:.1f}s' for c in ours_cpu)}; overhead {co - cd:+.1f}s = {100 * (co - cd) / co:.1f}% (best of each)")


if __name__ == "__main__":
    main()
