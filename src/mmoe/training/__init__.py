"""Losses, metrics, the training loop and the end-to-end ``train`` pipeline."""
