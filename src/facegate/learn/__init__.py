"""The learning toolkit: facegate's annex, built on the core and never imported by it.

Losses (:mod:`~facegate.learn.losses`), online miners (:mod:`~facegate.learn.miners`),
networks (:mod:`~facegate.learn.nets`), samplers and training loops
(:mod:`~facegate.learn.training`), the Omniglot data set
(:mod:`~facegate.learn.omniglot_data`) and the one-shot evaluation
(:mod:`~facegate.learn.oneshot`). Most of it needs PyTorch (the ``[train]`` extra).

It uses the core's pieces – distances, the evaluation metrics and protocols, the model
registry – and its PyTorch embedding models (:mod:`facegate.learn.models`) register
themselves into the core's model registry, which names them without importing them.
Importing this package imports no torch.
"""
