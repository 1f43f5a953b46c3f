"""prune-cli: adapt a pretrained BERT to a task by learning a binary mask over its frozen weights."""

__version__ = "0.1.0"
