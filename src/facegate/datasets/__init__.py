"""Datasets: loaders for public face benchmark data (LFW, folders of images); Omniglot lives in facegate.learn."""
