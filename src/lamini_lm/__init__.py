"""LaMini-LM reproduction: generate distillation data, train the herd, evaluate it."""
