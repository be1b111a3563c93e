"""What an evaluation stopped early (Ctrl-C, SIGTERM, a full disk) keeps, and the command that continues it:
said in one line by evaluate.py, from the composed config alone."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from lamini_lm.files import DiskFull

# what one model's evaluation writes into the run folder (lm-eval's samples and request cache): 2.7 kB per
# document, measured on the tiny GPT-2 export (20 documents of each of the 8 offline tasks: 423 kB), times the
# documents of the paper's 15 tasks (16,376 offline, about 49,000 online): 45 MB to 135 MB per model
MODEL_BYTES = 150_000_000


def kept(cfg: DictConfig) -> tuple[str, str]:
    """(what the run folder keeps, the command that continues)."""
    out = Path(cfg.paths.output_dir)
    again = f"python evaluate.py hydra.run.dir={out}"
    if cfg.mode == "lm_eval":
        caches = sorted(out.glob("*/lm_cache_*.db"))  # not sqlite's -journal beside one
        if not caches:
            return "no request was answered yet", again
        return f"lm-eval's answered requests are cached in {', '.join(str(c) for c in caches)}", again
    if cfg.mode == "human_judge":
        folder = Path(cfg.judge.out_dir) if cfg.judge.out_dir else Path(cfg.human.responses).parent / "judge"
        store = folder / "requests.jsonl"
        stored = store.read_bytes().count(b"\n") if store.exists() else 0
        return f"{stored} finished judge requests are stored in {store}", again
    if cfg.mode == "human_generate":
        done = len(list(Path(cfg.human.responses).glob("*.jsonl")))
        return f"the responses of {done} models are in {cfg.human.responses}", again
    return "this mode writes its outputs at its end", again


def stopped(cfg: DictConfig) -> str:
    what, again = kept(cfg)
    return f"{what}; `{again}` continues from there"


def disk_full(cfg: DictConfig) -> DiskFull:
    what, again = kept(cfg)
    return DiskFull(Path(cfg.paths.output_dir), MODEL_BYTES if cfg.mode == "lm_eval" else None, what,
                    f"run `{again}`")
