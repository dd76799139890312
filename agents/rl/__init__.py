"""Torch policies and multi-agent training algorithms (MAPPO/IPPO, MADDPG, QMIX).

Modules: :mod:`agents.rl.networks` (market encoders, aggregators, heads, SB3 extractor),
:mod:`agents.rl.distributions`, :mod:`agents.rl.common` (spaces, networks from spaces,
checkpoints), :mod:`agents.rl.rollout` (env pool, evaluation, random baseline),
:mod:`agents.rl.mappo`, :mod:`agents.rl.ippo`, :mod:`agents.rl.maddpg`, :mod:`agents.rl.qmix`.
Each algorithm exposes ``train(env_fn, config, seed, total_steps, log_fn=None)``.
Importing this package does not import torch-heavy modules beyond what you ask for.
"""
