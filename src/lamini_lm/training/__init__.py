"""Stage 2: training the herd (train.py -> run.train)."""
