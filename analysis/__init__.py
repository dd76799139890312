"""Analysis of marketsim runs: plots, stylized facts, impact fits (reads the Parquet logs)."""
