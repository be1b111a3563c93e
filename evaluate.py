"""Stage 3, evaluation: zero-shot lm-eval on the paper's 15 tasks, the paper's tables, human evaluation.

    python evaluate.py model=outputs/train/<time>/hf eval=lamini15_local
    python evaluate.py model=multirun/train/<time>             # every */hf export of a training sweep
    python evaluate.py mode=report report.results=[outputs/evaluate]
"""

from lamini_lm.stopping import while_starting

while_starting()  # first: a Ctrl-C during the imports below is one line, not a traceback

import sys

import hydra

from lamini_lm import config  # registers the config resolvers; the one config tree
from lamini_lm.overrides import check_overrides
from lamini_lm.rerun import with_own_overrides
from lamini_lm.run_lock import check_run_folder, hydra_job
from lamini_lm.secret_keys import refuse_secret_overrides


@hydra.main(config_path=config.entry_configs(__file__), config_name="evaluate", version_base="1.3")
@hydra_job
def main(cfg):
    import logging

    from lamini_lm.evaluation import kept
    from lamini_lm.evaluation.run import run
    from lamini_lm.files import is_full
    from lamini_lm.stopping import stop_signals

    logging.raiseExceptions = False  # the log file is in the run folder: a full disk must not print a traceback per line
    try:
        with stop_signals(lambda: kept.stopped(cfg)):  # Ctrl-C or SIGTERM: what is kept, the command that continues
            run(cfg)
    except Exception as e:  # OSError 28 from any writer, sqlite's "database or disk is full" from lm-eval's cache
        if not is_full(e):
            raise
        raise kept.disk_full(cfg) from None


def _model_alias(argv: list[str]) -> list[str]:
    # `model=<export>` reads naturally, but conf/model/ is train.py's config group, so Hydra would look for
    # conf/model/<export>.yaml; the config key is `models`, and `model=` (also `-m model=a,b`) maps to it.
    return [("models=" + a[len("model="):]) if a.startswith("model=") else a for a in argv]


if __name__ == "__main__":
    refuse_secret_overrides()  # before Hydra saves or echoes the command line
    check_run_folder(("hydra.run.dir",))  # before Hydra writes into it: writable, held by no other run
    sys.argv[1:] = with_own_overrides(sys.argv[1:])  # a run folder named alone continues with its own
    sys.argv[1:] = _model_alias(sys.argv[1:])
    check_overrides("evaluate", doc=__doc__)  # after the alias: every override (and sweep job) composes, or one line
    main()
