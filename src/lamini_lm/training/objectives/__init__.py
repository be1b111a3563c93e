"""Training objectives (conf/objective/): how a micro-batch becomes the loss train.py minimises. See base.py."""
