"""Teachers, shared by generate.py and evaluate.py's LLM judge: chat models that answer requests into a
resumable request store, with progress, rate limits, token counts and cost."""
