"""Stage 3: zero-shot lm-eval on the paper's 15 tasks, the paper's tables side by side, human evaluation.

    python evaluate.py model=<export dir | training multirun dir | hub id> [eval=lamini15_local]
    python evaluate.py mode=report report.results=[outputs/evaluate]
"""
