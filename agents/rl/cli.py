"""`marketsim train` and `marketsim evaluate`.

``marketsim train SCENARIO --algo ALGO --steps N --seed S --out DIR`` trains one of the
single-agent SB3 algorithms (ppo, a2c, sac, td3, ddpg; the scenario must declare exactly one RL
agent) or our multi-agent algorithms (ippo, mappo, maddpg, qmix) on every RL agent of the
scenario; writes ``DIR/config.json`` + weights (``state_dict`` files, loaded with
``torch.load(weights_only=True)``), metrics as CSV (and TensorBoard for SB3).

``marketsim evaluate DIR --episodes K [--json]`` replays the trained policy and the baselines
(random, cash, buy-and-hold, equal-weight, passive maker — whichever fit the action modes) on K
fresh seeds and prints mean episode returns with 95% CIs; writes ``evaluation.json``,
``evaluation.csv`` and ``evaluation.png`` into DIR.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

MULTI_ALGOS = ("ippo", "mappo", "maddpg", "qmix")
ALGOS = ("ppo", "a2c", "sac", "td3", "ddpg", *MULTI_ALGOS)


def add_parser(sub) -> None:
    """Register ``train`` and ``evaluate``."""
    p = sub.add_parser("train", help="train RL agents on a scenario")
    p.add_argument("scenario", help="scenario .toml with [[rl_agents]]")
    p.add_argument("--algo", choices=ALGOS, default="ppo")
    p.add_argument("--steps", type=int, default=20_000, help="training env steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--device", default="auto", help="auto (CUDA if present), cpu or cuda")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--max-episode-steps", type=int, default=None)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_train)
    e = sub.add_parser("evaluate", help="compare a trained policy with baselines")
    e.add_argument("run_dir", help="directory written by `marketsim train`")
    e.add_argument("--episodes", type=int, default=5)
    e.add_argument("--seed0", type=int, default=10_000, help="first evaluation seed")
    e.add_argument("--json", action="store_true", help="print the summary as JSON")
    e.set_defaults(func=cmd_evaluate)


def _env_kwargs(args) -> dict:
    kw = {}
    if args.max_episode_steps:
        kw["max_steps"] = args.max_episode_steps
    return kw


def cmd_train(args) -> int:
    import torch

    from marketsim.errors import ConfigError
    from marketsim.scenario import load_scenario

    torch.set_num_threads(max(1, args.threads))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        sc = load_scenario(args.scenario, args.set).to_dict()
    except ConfigError as e:
        print(f"marketsim train: {e}", file=sys.stderr)
        return 2
    env_kwargs = _env_kwargs(args)
    try:
        if args.algo in MULTI_ALGOS:
            return _train_multi(args, sc, env_kwargs, out)
        from agents.rl.sb3 import SB3Config, train_sb3

        cfg = SB3Config(algo=args.algo, device=args.device, env_kwargs=env_kwargs)
        policy, history = train_sb3(
            sc, cfg, args.seed, args.steps, out_dir=out, progress=not args.quiet
        )
    except ConfigError as e:
        print(f"marketsim train: {e}", file=sys.stderr)
        return 2
    if not args.quiet:
        last = history[-5:]
        mean = sum(r["charts/episode_return"] for r in last) / max(1, len(last))
        print(f"trained {args.algo} for {args.steps} steps; last episodes' mean return {mean:+.5f}")
        print(f"policy written to {out}")
    return 0


def _multi_module(algo: str):
    import importlib

    return importlib.import_module(f"agents.rl.{algo}")


def _train_multi(args, sc: dict, env_kwargs: dict, out: Path) -> int:
    from marketsim.env import parallel_env

    mod = _multi_module(args.algo)
    cfg_cls = next(
        getattr(mod, n) for n in dir(mod) if n.endswith("Config") and n[:-6].lower() == args.algo
    )
    cfg = cfg_cls()
    if hasattr(cfg, "device"):
        cfg.device = args.device
    rows: list[dict] = []
    bar = None
    if not args.quiet:
        from tqdm.auto import tqdm

        bar = tqdm(total=args.steps, unit="step", desc=args.algo)

    def log(row: dict) -> None:
        rows.append(dict(row))
        if bar is not None:
            done = int(row.get("global_step", row.get("step", 0)))
            bar.update(max(0, done - bar.n))

    policy, _ = mod.train(
        lambda: parallel_env(sc, **env_kwargs), cfg, seed=args.seed, total_steps=args.steps,
        log_fn=log,
    )  # fmt: skip
    if bar is not None:
        bar.close()
    policy.save(out / "policy.pt")
    keys = sorted({k for r in rows for k in r})
    with open(out / "metrics.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, keys)
        w.writeheader()
        w.writerows(rows)
    (out / "config.json").write_text(
        json.dumps(
            {
                "kind": "multi",
                "algo": args.algo,
                "scenario": sc,
                "seed": args.seed,
                "total_steps": args.steps,
                "env_kwargs": env_kwargs,
            },
            indent=2,
            default=str,
        )
    )
    if not args.quiet:
        print(f"trained {args.algo} for {args.steps} steps; policy written to {out}")
    return 0


def load_controller(run_dir: Path):
    """(scenario, env kwargs, controller factory) of a trained run directory."""
    doc = json.loads((run_dir / "config.json").read_text())
    if doc["kind"] == "sb3":
        from agents.rl.sb3 import SB3Policy

        pol = SB3Policy.load(run_dir)
        sc = doc["scenario"]
        env_kwargs = pol.cfg.env_kwargs

        def make(env, seed):
            agent = env.possible_agents[0]
            return (lambda obs: {agent: pol.act(obs[agent])} if agent in obs else {}), pol.reset

        return sc, env_kwargs, make
    mod = _multi_module(doc["algo"])
    pcls = next(getattr(mod, n) for n in dir(mod) if n.endswith("Policy"))
    pol = pcls.load(run_dir / "policy.pt")

    def make_multi(env, seed):
        return (lambda obs: pol.act(obs, deterministic=True)), (lambda: None)

    return doc["scenario"], doc.get("env_kwargs", {}), make_multi


def cmd_evaluate(args) -> int:
    import torch

    from agents.rl.evaluate import evaluate, format_table, plot_comparison

    torch.set_num_threads(1)
    run_dir = Path(args.run_dir)
    if not (run_dir / "config.json").is_file():
        print(
            f"marketsim evaluate: {run_dir} has no config.json (not a train run)", file=sys.stderr
        )
        return 2
    sc, env_kwargs, make = load_controller(run_dir)
    rows, summary = evaluate(
        sc, make, episodes=args.episodes, seed0=args.seed0, env_kwargs=env_kwargs
    )
    rows.to_csv(run_dir / "evaluation.csv", index=False)
    (run_dir / "evaluation.json").write_text(summary.to_json(orient="records", indent=2))
    plot_comparison(summary, run_dir / "evaluation.png")
    if args.json:
        print(summary.to_json(orient="records", indent=2))
    else:
        print(format_table(summary))
    return 0


def main(argv: list[str] | None = None) -> int:  # pragma: no cover - use `marketsim`
    ap = argparse.ArgumentParser(prog="marketsim")
    sub = ap.add_subparsers(dest="command", required=True)
    add_parser(sub)
    args = ap.parse_args(argv)
    return args.func(args)
