"""Stage 3, evaluation: zero-shot lm-eval on the paper's 15 tasks, the paper's tables, human evaluation.

    python evaluate.py models=outputs/train/<time>/hf eval=lamini15_local
    python evaluate.py models=multirun/train/<time>            # every */hf export of a training sweep
    python evaluate.py mode=report report.results=[outputs/evaluate]
"""

import hydra

from lamini_lm import config  # noqa: F401  (registers the config resolvers)
from lamini_lm.errors import exit_on_user_error


@hydra.main(config_path="conf", config_name="evaluate", version_base="1.3")
@exit_on_user_error
def main(cfg):
    from lamini_lm.evaluation.run import run

    run(cfg)


if __name__ == "__main__":
    main()
