"""Stage 2: instruction-tune a student of the LaMini herd.

    python train.py                                  # SmolLM2-135M-Instruct, bundled sample data, CPU, offline
    python train.py model=tiny_gpt2                  # the one-minute smoke run (a random tiny model)
    python train.py model=tiny_t5 trainer=ddp_cpu    # encoder-decoder, DDP with 2 gloo processes
    python train.py data=jsonl data.path=my.jsonl    # your own data (data.fields maps other field names)
    python train.py -m experiment=lamini_herd        # the 15 students of Table 3, the paper's recipe, 8 GPUs
    python train.py hydra.run.dir=<run>              # resume a run, with the overrides it was started with
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
from lamini_lm.training.recipe import keep_earlier_config


@hydra.main(config_path=config.entry_configs(__file__), config_name="train", version_base="1.3")
@hydra_job
def main(cfg):
    from lamini_lm.training.run import train

    train(cfg)


if __name__ == "__main__":
    refuse_secret_overrides()  # before Hydra saves or echoes the command line
    folders = check_run_folder(("hydra.run.dir",))  # before Hydra writes into it: writable, then held by this run
    sys.argv[1:] = with_own_overrides(sys.argv[1:])  # a run folder named alone continues with its own
    check_overrides("train", doc=__doc__)  # every override (and every job of a sweep) composes, or one line and exit 2
    keep_earlier_config(folders)  # a resume refused for a changed recipe puts the run's own .hydra/ back
    main()
