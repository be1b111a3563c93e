"""Evidence for token-level distillation, offline: objective=sequence against token_kd and online_kd, measured.

    python -m bench.distill_evidence --out /tmp/distill_evidence \
        --instructions <user_oriented_instructions.jsonl> seed_tasks     # the full command: docs/distill_evidence.md

1. D_ALL from the offline real teacher: generate.py with teacher=hf_local (SmolLM2-135M-Instruct) and
   teacher.logprobs=20 answers the instructions of the given self-instruct-style files (their first instance's input
   joined as generate.py joins it), as the subset `alpaca` (an original subset: the instructions as they are, new
   responses). The request store keeps every reply: a rerun of this command pays for none twice.
2. A seeded held-out split of the generated records (--heldout of them), the rest to train on.
3. Each student (STUDENTS: a random-init Llama of the teacher's own tokenizer, a random-init GPT-2 of GPT-2's BPE,
   a T5 of T5's SentencePiece) is trained by train.py with each objective on the same records, steps and
   seed, for every seed: the same command line but for `objective=`. A finished run (its metrics.json and export)
   is read back, not trained again.
4. Every export is scored on the held-out records by evaluate_runs: the NLL of the teacher's responses per target
   token (the student's tokens, its EOS included) and per response byte (comparable across tokenizers), and the
   distance to the teacher's own next-token distribution where the two meet: the teacher reads each held-out
   record in its own format (chat template, its tokens), the student in its own, and a student token meets the
   teacher token that starts at the same byte of the response (online_kd's TeacherText alignment; the EOS meets
   the EOS). Of the teacher's tokenizer: KL(teacher || student) over the whole vocabulary. Of another: KL is not
   defined across two vocabularies, so the column is ULD's distance instead (divergence.uld: the L1 distance
   between the teacher's 20 largest probabilities and the student's 20 largest, sorted, plus both rests), and
   the table says so. `aligned` is the share of the student's held-out target tokens that meet a teacher token.

Tokens/s is train.py's own perf/mean_real_tokens_per_s (real tokens over the steps' time, data included); the
wall seconds of each run are kept too. Results: <out>/results.json (every run) and <out>/results.md (the table:
mean and standard deviation over the seeds), printed at the end. --threads sets OMP_NUM_THREADS of every process: on
a loaded 2-core machine one thread each runs far faster than two (measured: SmolLM2's decode step 12x).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# students of about 7M parameters: 4 layers of width 128 (the output layer over ~50k tokens is most of their
# compute); random init, so the objective decides all they learn from a few hundred records
STUDENTS = {
    # the teacher's own tokenizer (SmolLM2's, read from its GGUF file): token_kd's exact top-k divergence,
    # online_kd on the student's own rows with the full-vocabulary divergence
    "llama_smollm2_tok": ["model=tiny_llama", "model.hub_id=${asset:smollm2}", f"model.gguf_file={GGUF}",
                          "model.tokenizer=${model.hub_id}", "model.architecture.vocab_size=49152",
                          "model.architecture.hidden_size=128", "model.architecture.intermediate_size=384",
                          "model.architecture.num_hidden_layers=4", "model.architecture.num_attention_heads=4",
                          "model.architecture.num_key_value_heads=2", "model.params=7.1M"],
    # another tokenizer (GPT-2's BPE): ULD from the stored top-20 (token_kd) or the teacher's top 20 (online_kd)
    "gpt2_gpt2_tok": ["model=tiny_gpt2", "model.architecture.n_layer=4", "model.architecture.n_head=4",
                      "model.architecture.n_embd=128", "model.params=7.3M"],
    # an encoder-decoder of T5's SentencePiece (ULD as GPT-2's)
    "t5_t5_tok": ["model=tiny_t5", "model.architecture.d_model=128", "model.architecture.d_ff=512",
                  "model.architecture.d_kv=32", "model.architecture.num_layers=3", "model.architecture.num_heads=4",
                  "model.params=5.5M"],
}
OBJECTIVES = ("sequence", "token_kd", "online_kd")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="the folder of D_ALL, the runs and the results")
    p.add_argument("--instructions", nargs="+", default=None,
                   help="self-instruct-style JSONL files (instruction, instances[0].input), in order; 'seed_tasks' "
                        "names the seed_tasks asset's 175 seed tasks (the default)")
    p.add_argument("--records", type=int, default=427, help="instructions answered (a seeded sample of the files')")
    p.add_argument("--heldout", type=int, default=48, help="generated records held out for the scores")
    p.add_argument("--students", default=",".join(STUDENTS))
    p.add_argument("--objectives", default=",".join(OBJECTIVES))
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--global-batch", type=int, default=16)
    p.add_argument("--micro-batch", type=int, default=8)
    p.add_argument("--max-response-tokens", type=int, default=192, help="teacher.max_tokens.responses")
    p.add_argument("--teacher-batch", type=int, default=32, help="teacher.batch_size")
    p.add_argument("--keep-truncated", action="store_true",
                   help="responses.drop_truncated=false: keep the responses cut at --max-response-tokens (assembly "
                        "only: the requests and their ids are the same either way)")
    p.add_argument("--threads", type=int, default=2, help="OMP_NUM_THREADS of every process")
    p.add_argument("--generate-only", action="store_true")
    p.add_argument("--d-all", type=Path, default=None,
                   help="train on this d_all.jsonl (its d_all.logprobs.parquet beside it) instead of generating")
    args = p.parse_args()
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), TOKENIZERS_PARALLELISM="false",
               WANDB_MODE="disabled")
    d_all = args.d_all.resolve() if args.d_all else generate(args, env)
    if args.generate_only:
        return
    train_path, heldout = split(d_all, args)
    results = {"command": " ".join(["python -m bench.distill_evidence", *sys.argv[1:]]),
               "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
               "data": {"train": sum(1 for _ in open(train_path)), "heldout": len(heldout)}, "runs": []}
    for seed in map(int, args.seeds.split(",")):  # seed by seed, the table written after each: a first one early
        for student in args.students.split(","):
            for objective in args.objectives.split(","):
                results["runs"].append(train(student, objective, seed, train_path, d_all, args, env))
        results["teacher"] = evaluate_runs(results["runs"], heldout, args)
        results.update(date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), machine=machine())
        (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
        table = render(results)
        (args.out / "results.md").write_text(table)
        print(table, flush=True)


def machine() -> str:
    import platform

    import torch

    return (f"{platform.machine()} {os.cpu_count()} cores, torch {torch.__version__}, load average "
            f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")


# -- 1. D_ALL from the offline teacher -------------------------------------------------------------------------------
def pool_file(args) -> Path:
    """The instructions of the given files as one JSONL pool (instruction, input), in the files' order."""
    from lamini_lm import assets

    seeds = str(assets.path("seed_tasks") / "seed_tasks.jsonl")
    files = [seeds if f == "seed_tasks" else f for f in args.instructions or ["seed_tasks"]]
    rows = []
    for name in files:
        for line in open(name):
            r = json.loads(line)
            inst = (r.get("instances") or [{}])[0]
            rows.append({"instruction": r["instruction"], "input": r.get("input", inst.get("input", ""))})
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "instructions_pool.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def generate(args, env) -> Path:
    data = args.out / "data"
    cmd = [sys.executable, "generate.py", "teacher=hf_local", "teacher.logprobs=20",
           f"teacher.batch_size={args.teacher_batch}", f"teacher.max_tokens.responses={args.max_response_tokens}",
           f"out_dir={data}", "size=smoke", "size.self_instruct_without_topic=0", "size.self_instruct_with_topic=0",
           f"size.alpaca={args.records}", f"seed_pools.alpaca.path={pool_file(args)}", "progress=false",
           f"responses.drop_truncated={str(not args.keep_truncated).lower()}",
           f"hydra.run.dir={data}/hydra"]
    print("$", " ".join(cmd[1:]), flush=True)
    t = time.perf_counter()
    with open(args.out / "generate.log", "a") as log:
        if subprocess.run(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT).returncode:
            sys.exit(f"generate.py failed: {args.out / 'generate.log'}")
    print(f"D_ALL: {sum(1 for _ in open(data / 'd_all.jsonl'))} records in {time.perf_counter() - t:.0f} s",
          flush=True)
    return data / "d_all.jsonl"


# -- 2. the held-out split ---------------------------------------------------------------------------------------------
def split(d_all: Path, args) -> tuple[Path, list[dict]]:
    """The records with teacher log-probs (assembly leaves a record out of the sidecar whose tokens do not spell its
    response: token_kd could not train on it), a seeded --heldout of them held out."""
    from lamini_lm.logprobs import SIDECAR, Sidecar

    sidecar = Sidecar(d_all.parent / SIDECAR)
    every = [json.loads(line) for line in open(d_all)]
    records = [r for r in every if r["id"] in sidecar]
    if len(records) < len(every):
        print(f"{len(every) - len(records)} of {len(every)} records have no teacher log-probs: left out", flush=True)
    order = list(range(len(records)))
    random.Random(0).shuffle(order)
    held = sorted(order[:args.heldout])
    keep = set(held)
    train_path = args.out / "train.jsonl"
    train_path.write_text("".join(json.dumps(r) + "\n" for i, r in enumerate(records) if i not in keep))
    heldout = [records[i] for i in held]
    (args.out / "heldout.jsonl").write_text("".join(json.dumps(r) + "\n" for r in heldout))
    return train_path, heldout


# -- 3. training ----------------------------------------------------------------------------------------------------
def train(student: str, objective: str, seed: int, train_path: Path, d_all: Path, args, env) -> dict:
    folder = args.out / "runs" / f"{student}-{objective}-s{seed}"
    extra = {"token_kd": [f"objective.logprobs={d_all.parent / 'd_all.logprobs.parquet'}"]}.get(objective, [])
    cmd = [sys.executable, "train.py", *STUDENTS[student], f"objective={objective}", *extra, "data=jsonl",
           f"data.path={train_path}", "data.val_size=8", f"seed={seed}", f"global_batch_size={args.global_batch}",
           f"micro_batch_size={args.micro_batch}", f"trainer.max_epochs={args.epochs}", "logger=csv",
           "callbacks.sample_generations.num_samples=0", f"hydra.run.dir={folder}"]
    run = {"student": student, "objective": objective, "seed": seed, "folder": str(folder),
           "command": " ".join(cmd[1:])}
    if not ((folder / "metrics.json").is_file() and (folder / "hf" / "config.json").is_file()):
        load = os.getloadavg()[0]
        print(f"$ {run['command']}", flush=True)
        t = time.perf_counter()
        res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        if res.returncode:
            sys.exit(f"train.py failed ({folder}):\n{res.stderr[-3000:]}")
        (folder / "wall.json").write_text(json.dumps({"seconds": time.perf_counter() - t, "load_before": load,
                                                      "load_after": os.getloadavg()[0]}))
    metrics = json.loads((folder / "metrics.json").read_text())
    wall = json.loads((folder / "wall.json").read_text()) if (folder / "wall.json").is_file() else {}
    run.update(tok_s=metrics.get("perf/mean_real_tokens_per_s"), steps=metrics.get("global_step"),
               train_kd_aligned=metrics.get("train/kd_aligned"), val_loss=metrics.get("val/loss"),
               wall_s=wall.get("seconds"), load=[wall.get("load_before"), wall.get("load_after")])
    print(f"  {student} {objective} seed {seed}: {run['tok_s']:.0f} tok/s, {run['wall_s'] or 0:.0f} s, "
          f"val/loss {run['val_loss']:.3f}", flush=True)
    return run


# -- 4. the scores ----------------------------------------------------------------------------------------------------
def evaluate_runs(runs: list[dict], heldout: list[dict], args) -> dict:
    """Each run's scores on the held-out records (see the module), added to its dict and kept in its folder
    (score.json: a rerun reads them back); returns the teacher's own NLL of the held-out responses."""
    import torch

    from lamini_lm import config
    from lamini_lm.models.backbone import build_family, load_model, load_tokenizer
    from lamini_lm.models.spec import ModelSpec

    cached = args.out / "teacher_score.json"
    todo = [r for r in runs if not (Path(r["folder"]) / "score.json").is_file()]
    if todo or not cached.is_file():
        torch.set_num_threads(args.threads)
        spec = config.typed(config.compose("train", ["model=smollm2_135m"]).model, ModelSpec, "model")
        t_family, t_tok = build_family(spec), load_tokenizer(spec)
        teacher = load_model(spec, t_family).eval()
        t_style = t_family.style(spec.prompt_style, t_tok)
        records = {"instruction": [instruction(r) for r in heldout], "response": [r["response"] for r in heldout]}
        students = {r["student"] for r in todo} or {runs[0]["student"]}
        for student in sorted(students):
            group = [r["folder"] for r in todo if r["student"] == student] or [runs[0]["folder"]]
            print(f"scoring {len(group)} runs of {student} on {len(heldout)} held-out records", flush=True)
            got, teacher_nll = score_group(group, records, teacher, t_family, t_tok, t_style)
            for folder, score in got.items():
                (Path(folder) / "score.json").write_text(json.dumps(score))
            cached.write_text(json.dumps(teacher_nll))
    for r in runs:
        r.update(json.loads((Path(r["folder"]) / "score.json").read_text()))
    return json.loads(cached.read_text())


def instruction(record: dict) -> str:
    """The record's instruction as train.py reads it (data.fields: an Alpaca-style input joined after a blank line)."""
    extra = record.get("input") or ""
    return f"{record['instruction']}\n\n{extra}" if extra else record["instruction"]


def score_group(folders: list[str], records: dict, teacher, t_family, t_tok, t_style):
    """Every export of one student config (one tokenizer and family) on the held-out records, one record at a time,
    the teacher's logits computed once per record for all of them."""
    import torch
    import torch.nn.functional as F

    from lamini_lm import inference
    from lamini_lm.data.collate import Collate
    from lamini_lm.data.tokenization import Tokenize
    from lamini_lm.training.objectives import divergence
    from lamini_lm.training.objectives.online_kd import TeacherText

    models = [inference.load(Path(f) / "hf") for f in folders]
    _, tok, family, style = models[0]
    shared = tok.get_vocab() == t_tok.get_vocab()
    enc = Tokenize(tok, style, family, 512, 512, True, context=family.context(models[0][0].config))(records)
    text = TeacherText(tok, family, t_tok, t_family, t_style, t_family.context(teacher.config))(records, enc)
    collate, t_collate = Collate(tok.pad_token_id, family.separate_labels), Collate(t_tok.pad_token_id,
                                                                                   t_family.separate_labels)
    sums = {f: {"nll": 0.0, "tokens": 0, "dist": 0.0, "aligned": 0} for f in folders}
    t_sum = {"nll": 0.0, "tokens": 0}
    n_bytes = 0
    for m in models:
        m[0].eval()
    with torch.no_grad():
        for i in range(len(records["response"])):
            n_bytes += len(records["response"][i].encode("utf-8"))
            batch = collate(({"input_ids": [enc["input_ids"][i]], "labels": [enc["labels"][i]]}, None))
            t_batch = t_collate(({"input_ids": [text["okd_input_ids"][i].tolist()],
                                  "labels": [text["okd_labels"][i].tolist()]}, None))
            t_logits, t_targets = t_family.target_logits(teacher, t_batch)
            t_logp = F.log_softmax(t_logits.float(), -1)
            t_sum["nll"] -= float(t_logp.gather(-1, t_targets[:, None]).sum())
            t_sum["tokens"] += len(t_targets)
            rows = torch.as_tensor(text["okd_rows"][i]).long()
            known = rows >= 0
            for folder, (model, *_rest) in zip(folders, models):
                logits, targets = family.target_logits(model, batch)
                logp = F.log_softmax(logits.float(), -1)
                s = sums[folder]
                s["nll"] -= float(logp.gather(-1, targets[:, None]).sum())
                s["tokens"] += len(targets)
                if not known.any():
                    continue
                p, q = t_logp[rows[known]], logp[known]
                if shared:
                    v = min(p.shape[-1], q.shape[-1])
                    d = divergence.full(t_logits[rows[known]][:, :v].float(), logits[known][:, :v].float(),
                                        "forward_kl", 1.0, 0.5)
                else:
                    d = divergence.uld(q, p.topk(20, -1).values, 1.0)
                s["dist"] += float(d.sum())
                s["aligned"] += int(known.sum())
    out = {f: {"nll_token": s["nll"] / s["tokens"], "nll_byte": s["nll"] / n_bytes,
               "distance": "kl" if shared else "uld_top20", "dist": s["dist"] / max(s["aligned"], 1),
               "aligned": s["aligned"] / s["tokens"]} for f, s in sums.items()}
    return out, {"nll_token": t_sum["nll"] / t_sum["tokens"], "nll_byte": t_sum["nll"] / n_bytes}


# -- the table --------------------------------------------------------------------------------------------------------
def render(results: dict) -> str:
    def mean_sd(xs):
        xs = [x for x in xs if x is not None]
        if not xs:
            return "n/a"
        sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
        return f"{statistics.mean(xs):.3f} ± {sd:.3f}"

    lines = ["| student | objective | seeds | held-out NLL/token | NLL/byte | distance to teacher | aligned | "
             "train tok/s | x sequence's |", "|---|---|---|---|---|---|---|---|---|"]
    groups: dict[tuple, list[dict]] = {}
    for run in results["runs"]:
        groups.setdefault((run["student"], run["objective"]), []).append(run)
    for (student, objective), rs in groups.items():
        kind = "KL" if rs[0]["distance"] == "kl" else "ULD top-20"
        tok_s = [r["tok_s"] for r in rs]
        # the speed against the sequence objective's run of the same student and seed, minutes apart: the machine's
        # load moves the tokens/s of a run more than the objective does
        seq = {r["seed"]: r["tok_s"] for r in groups.get((student, "sequence"), [])}
        rel = [r["tok_s"] / seq[r["seed"]] for r in rs if r["seed"] in seq]
        lines.append(f"| {student} | {objective} | {len(rs)} | {mean_sd([r['nll_token'] for r in rs])} | "
                     f"{mean_sd([r['nll_byte'] for r in rs])} | {kind} {mean_sd([r['dist'] for r in rs])} | "
                     f"{statistics.mean(r['aligned'] for r in rs):.2f} | "
                     f"{statistics.median(tok_s):,.0f} ({min(tok_s):,.0f}–{max(tok_s):,.0f}) | "
                     + (f"{statistics.median(rel):.2f} ({min(rel):.2f}–{max(rel):.2f}) |" if rel else "— |"))
    t = results["teacher"]
    lines.append(f"| teacher (SmolLM2-135M-Instruct, its chat format) | — | — | {t['nll_token']:.3f} | "
                 f"{t['nll_byte']:.3f} | — | — | — | — |")
    head = (f"{results['date']}; {results['machine']}; {results['data']['train']} training records, "
            f"{results['data']['heldout']} held out\n\n")
    return head + "\n".join(lines) + "\n\n" + paired(groups) + "\n"


def paired(groups: dict) -> str:
    """Each objective against the sequence objective's run of the same student and seed (same initial weights, data
    order and steps): the differences' mean and their range over the seeds."""
    lines = ["| student | objective | Δ NLL/token vs sequence | Δ distance vs sequence | seeds better in NLL |",
             "|---|---|---|---|---|"]
    for (student, objective), rs in groups.items():
        seq = {r["seed"]: r for r in groups.get((student, "sequence"), [])}
        pairs = [(r, seq[r["seed"]]) for r in rs if r["seed"] in seq]
        if objective == "sequence" or not pairs:
            continue
        cells = []
        for key in ("nll_token", "dist"):
            d = [a[key] - b[key] for a, b in pairs]
            cells.append(f"{statistics.mean(d):+.3f} ({min(d):+.3f} … {max(d):+.3f})")
        better = sum(a["nll_token"] < b["nll_token"] for a, b in pairs)
        lines.append(f"| {student} | {objective} | {cells[0]} | {cells[1]} | {better} of {len(pairs)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
