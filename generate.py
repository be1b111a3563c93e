"""Stage 1, the distillation data: instructions, responses, D_ALL, and its analysis.

    python generate.py stage=all teacher=openai out_dir=data/run1
    python generate.py stage=analyze analysis.input=data/run1/d_all.jsonl
"""

import hydra

from lamini_lm import config  # noqa: F401  (registers the config resolvers)
from lamini_lm.errors import exit_on_user_error
from lamini_lm.overrides import check_overrides
from lamini_lm.run_lock import check_run_folder
from lamini_lm.secret_keys import refuse_secret_overrides


@hydra.main(config_path="conf", config_name="generate", version_base="1.3")
@exit_on_user_error
def main(cfg):
    from lamini_lm.distill.pipeline import run

    run(cfg)


if __name__ == "__main__":
    refuse_secret_overrides()  # before Hydra saves or echoes the command line
    check_run_folder(("hydra.run.dir", "out_dir"))  # before Hydra writes into it: writable, held by no other run
    check_overrides("generate")  # every override (and every job of a sweep) composes, or one line and exit 2
    main()
