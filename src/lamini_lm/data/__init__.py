"""Instruction data for training: the record schema, loaders, tokenisation and batching."""
