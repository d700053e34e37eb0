"""Datasets: loaders for public benchmark data (Omniglot, LFW, folders of images)."""
