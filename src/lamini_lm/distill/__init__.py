"""Stage 1: distillation data from a teacher LLM (Section 3 of the paper)."""
