"""Stage 1, the distillation data: instructions, responses, D_ALL, and its analysis.

    python generate.py stage=all teacher=openai out_dir=data/run1
    python generate.py teacher=openai out_dir=data/run1 dry_run=true       # requests, tokens and cost; sends nothing
    python generate.py stage=analyze analysis.input=data/run1/d_all.jsonl
"""

from lamini_lm.stopping import while_starting

while_starting()  # first: a Ctrl-C during the imports below is one line, not a traceback

import hydra

from lamini_lm import config  # registers the config resolvers; the one config tree
from lamini_lm.overrides import check_overrides
from lamini_lm.run_lock import check_run_folder, hydra_job
from lamini_lm.secret_keys import refuse_secret_overrides


@hydra.main(config_path=config.entry_configs(__file__), config_name="generate", version_base="1.3")
@hydra_job
def main(cfg):
    from lamini_lm.distill.pipeline import run

    run(cfg)


if __name__ == "__main__":
    refuse_secret_overrides()  # before Hydra saves or echoes the command line
    check_run_folder(("hydra.run.dir", "out_dir"))  # before Hydra writes into it: writable, held by no other run
    check_overrides("generate", doc=__doc__)  # every override (and every sweep job) composes, or one line, exit 2
    main()
