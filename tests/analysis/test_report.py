"""Tests of analysis.report and ``marketsim report``: a report of a short real run, the
calibration targets against slow reference computations, plots and error messages."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.io import Run
from analysis.report import (
    TARGETS,
    calibration_targets,
    plot_impact_law,
    reference_table,
    robust_acf_se,
    write_report,
)
from analysis.stylized import FACTS, autocorrelation
from marketsim.cli import main
from marketsim.errors import ConfigError, DataError

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "scenarios" / "quickstart.toml"
T0 = pd.Timestamp("2024-01-02 09:30")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A real 100-minute quickstart run written by ``marketsim run``."""
    out = tmp_path_factory.mktemp("run") / "qs"
    rc = main(["run", str(QUICKSTART), "--steps", "6000", "--out", str(out), "--quiet",
               "--no-plots", "--seed", "3"])  # fmt: skip
    assert rc == 0
    return out


def test_report_of_a_real_run_has_every_fact_and_figure(run_dir, tmp_path, capsys):
    out = tmp_path / "rep"
    assert main(["report", str(run_dir), "--out", str(out)]) == 0
    assert "calibration targets met" in capsys.readouterr().out
    md = (out / "report.md").read_text()
    facts = pd.read_csv(out / "facts.csv")
    assert list(facts["name"]) == list(FACTS)  # every fact, trade signs included
    for name in FACTS:
        assert f"| {name} |" in md
    for png in ("returns.png", "acf.png", "signs.png", "spread.png"):
        assert (out / png).stat().st_size > 1000
        assert f"({png})" in md
    targets = pd.read_csv(out / "targets.csv")
    assert set(targets["target"]) == set(TARGETS) - {"impact_exponent"}
    assert "S&P 500" in md and "Cont 2001" in md
    # the S&P 500 column holds numbers (arch ships the data)
    assert (
        "| excess_kurtosis |" in md and "8.1" in md.split("| excess_kurtosis |")[1].split("\n")[0]
    )


def test_html_report_and_impact_section(run_dir, tmp_path):
    imp = tmp_path / "imp"
    imp.mkdir()
    rows = pd.DataFrame(
        {"q_over_v": [0.01, 0.02, 0.04, 0.08], "impact_over_sigma": [0.1, 0.14, -0.01, 0.3]}
    )
    rows.to_parquet(imp / "impact.parquet")
    fit = {"delta": 0.5, "Y": 1.0, "delta_ci": [0.4, 0.6], "n": 4}
    (imp / "impact_fit.json").write_text(json.dumps(fit))
    path = write_report(run_dir, tmp_path / "h", "html", impact_dir=imp, sp500=False)
    page = path.read_text()
    assert path.name == "report.html" and page.startswith("<!DOCTYPE html>")
    assert 'src="impact.png"' in page and (path.parent / "impact.png").is_file()
    assert "impact_exponent" in page  # the impact target row comes from the fit
    t = pd.read_csv(path.parent / "targets.csv").set_index("target")
    assert t.loc["impact_exponent", "passed"]


def test_bad_format_and_missing_impact_study_are_reported(run_dir, tmp_path):
    with pytest.raises(ConfigError, match="fmt = 'pdf'"):
        write_report(run_dir, tmp_path, "pdf")
    with pytest.raises(DataError, match="holds no impact.parquet"):
        write_report(run_dir, tmp_path, impact_dir=tmp_path)
    with pytest.raises(ConfigError, match="out_dir is required"):
        write_report(_run_from_returns(np.zeros(390)), None)
    assert main(["report", str(tmp_path / "nope")]) == 2


# ---------------------------------------------------------------------------- targets
def _run_from_returns(r: np.ndarray, per_day: int = 390, vol: np.ndarray | None = None) -> Run:
    """A hand-built run whose 1-minute mids give exactly the returns ``r`` (per_day a day)."""
    days = len(r) // per_day
    rows, trades = [], []
    for d in range(days):
        rr = r[d * per_day : (d + 1) * per_day]
        mid = 100.0 * np.exp(np.r_[0.0, np.cumsum(rr)])
        t = T0 + pd.Timedelta(days=d) + pd.to_timedelta(np.arange(per_day + 1), unit="min")
        rows.append(pd.DataFrame({"time": t, "mid": mid}))
        # one trade per minute with alternating runs of signs; volume tracks |r|
        v = (
            np.r_[1.0, 1.0 + 1000 * np.abs(rr)]
            if vol is None
            else np.r_[1.0, vol[d * per_day : (d + 1) * per_day]]
        )
        sign = np.where((np.arange(per_day + 1) // 7) % 2 == 0, 1, -1)
        trades.append(pd.DataFrame({"time": t, "qty": np.rint(v).astype(int), "aggressor": sign}))
    q = pd.concat(rows, ignore_index=True)
    q["step"] = np.arange(len(q))
    q["asset"] = "X"
    q["bid"], q["ask"] = q["mid"] - 0.005, q["mid"] + 0.005
    q["bid_qty"] = q["ask_qty"] = 1
    q["last"] = q["mid"]
    t = pd.concat(trades, ignore_index=True)
    t["step"] = np.arange(len(t))
    t["asset"] = "X"
    t["price"] = q["mid"].to_numpy()
    t["buyer"], t["seller"] = 1, 2
    return Run(trades=t, quotes=q)


def _naive_acf(x: np.ndarray, k: int, per_day: int) -> float:
    """rho(k) with pairs inside one day, pooled mean and variance (the stylized-facts rule)."""
    d = x - x.mean()
    num, cnt = 0.0, 0
    for s in range(0, len(x), per_day):
        seg = d[s : s + per_day]
        num += float(np.sum(seg[:-k] * seg[k:]))
        cnt += len(seg) - k
    return num / cnt / float(np.mean(d * d))


def test_targets_match_slow_reference_computations():
    rng = np.random.default_rng(5)
    n, per_day = 390 * 4, 390
    # GARCH(1,1)-like returns: heavy tails and volatility clustering, no linear correlation
    r = np.empty(n)
    h = 1.0
    for i in range(n):
        r[i] = math.sqrt(h) * rng.standard_t(5) * 1e-3
        h = 0.05 + 0.85 * h + 0.1 * (r[i] / 1e-3) ** 2
    t = calibration_targets(_run_from_returns(r, per_day)).set_index("target")
    z = r / r.std()
    assert t.loc["excess_kurtosis", "value"] == pytest.approx(stats.kurtosis(z), rel=1e-9)
    worst = max(abs(_naive_acf(z, k, per_day)) for k in range(2, 51))
    assert t.loc["no_autocorrelation_beyond_lag_1", "value"] == pytest.approx(worst, rel=1e-9)
    a1 = _naive_acf(np.abs(z), 1, per_day)
    assert t.loc["abs_return_acf_lag1", "value"] == pytest.approx(a1, rel=1e-9)
    assert t.loc["abs_return_acf_lag1", "passed"] == (0.1 <= a1 <= 0.6)
    assert t.loc["excess_kurtosis", "passed"] == (stats.kurtosis(z) >= 3)
    assert "impact_exponent" not in t.index


def test_robust_acf_se_matches_the_formula_and_the_iid_limit():
    rng = np.random.default_rng(3)
    per_day = 300
    x = rng.standard_t(4, per_day * 3) * np.repeat([1.0, 3.0, 0.5], per_day)  # clustered
    seg = np.repeat([0, 1, 2], per_day)
    se = robust_acf_se(x, 5, seg)
    d = x - x.mean()
    c0 = float(np.mean(d * d))
    for k in (1, 5):
        num = sum(
            float(np.sum(d[s : s + per_day][:-k] ** 2 * d[s : s + per_day][k:] ** 2))
            for s in range(0, x.size, per_day)
        )
        n_k = 3 * (per_day - k)
        assert se[k - 1] == pytest.approx(math.sqrt(num) / (n_k * c0), rel=1e-9)
    assert se[0] > 1.3 / math.sqrt(3 * per_day)  # wider than the i.i.d. band
    g = rng.normal(size=200_000)
    assert robust_acf_se(g, 2)[0] == pytest.approx(1 / math.sqrt(g.size - 1), rel=0.02)


def test_robust_acf_se_under_an_ma1_null_matches_the_formula():
    rng = np.random.default_rng(4)
    per_day = 200
    x = rng.standard_t(5, per_day * 3) * np.repeat([1.0, 2.5, 0.7], per_day)
    seg = np.repeat([0, 1, 2], per_day)
    se0 = robust_acf_se(x, 6, seg)
    se1 = robust_acf_se(x, 6, seg, null_lags=1)
    d = x - x.mean()
    c0 = float(np.mean(d * d))
    for k in (2, 6):
        v = cross = 0.0
        for s in range(0, x.size, per_day):
            e = d[s : s + per_day]
            p = e[:-k] * e[k:]  # x_t = d_t d_{t+k} within the day
            v += float(np.sum(p * p))
            cross += float(np.sum(p[:-1] * p[1:]))
        n_k = 3 * (per_day - k)
        want = math.sqrt(v + 2 * max(cross, 0.0)) / (n_k * c0)
        assert se1[k - 1] == pytest.approx(want, rel=1e-9)
        assert se1[k - 1] >= se0[k - 1]


def test_ma1_null_gives_the_test_its_nominal_size():
    """Returns with a lag-1 bounce (MA(1), rho(1) = -0.44) and clustered volatility, but no
    correlation beyond lag 1: rho(k) / se_k for k >= 2 is standard normal with the MA(1)
    s.e.; the white-noise s.e. is too narrow by Bartlett's sqrt(1 + 2 rho(1)^2) = 1.18."""
    rng = np.random.default_rng(11)
    z0, z1 = [], []
    for _ in range(300):
        vol = np.repeat(np.exp(0.6 * rng.standard_normal(20)), 100)  # 20 regimes of 100
        e = rng.standard_normal(2001)
        r = (e[1:] - 0.6 * e[:-1]) * vol
        rho = autocorrelation(r, 8)
        z0.append(rho[1:] / robust_acf_se(r, 8)[1:])
        z1.append(rho[1:] / robust_acf_se(r, 8, null_lags=1)[1:])
    s0, s1 = float(np.std(z0)), float(np.std(z1))
    assert s1 == pytest.approx(1.0, abs=0.06)
    assert s0 > 1.1


def test_targets_fail_for_trending_gaussian_returns():
    rng = np.random.default_rng(1)
    e = rng.normal(size=390 * 3)
    r = np.empty_like(e)
    r[0] = e[0]
    for i in range(1, len(e)):  # AR(1) with phi = 0.5: autocorrelated, thin-tailed
        r[i] = 0.5 * r[i - 1] + e[i]
    t = calibration_targets(_run_from_returns(r * 1e-3)).set_index("target")
    assert not t.loc["excess_kurtosis", "passed"]
    assert not t.loc["no_autocorrelation_beyond_lag_1", "passed"]  # rho(2) ~ 0.25
    assert t.loc["no_autocorrelation_beyond_lag_1", "value"] > 0.15
    ok = calibration_targets(_run_from_returns(r * 1e-3), impact_fit={"delta": 0.9}).set_index(
        "target"
    )
    assert not ok.loc["impact_exponent", "passed"]
    with pytest.raises(ConfigError, match="max_lag = 5"):
        calibration_targets(_run_from_returns(r * 1e-3), max_lag=5)


def test_reference_table_aligns_sp500_rows_by_name():
    facts = pd.DataFrame(
        {"name": ["a", "b"], "value": [1.0, 2.0], "ci_low": np.nan, "ci_high": np.nan,
         "literature": "", "source": "", "passed": [True, False]}
    )  # fmt: skip
    sp = pd.DataFrame({"name": ["b", "c"], "value": [5.0, 6.0], "passed": [True, True]})
    t = reference_table(facts, sp)
    assert math.isnan(t["sp500"].iloc[0]) and t["sp500"].iloc[1] == 5.0
    assert reference_table(facts, None)["sp500"].isna().all()


def test_impact_plot_handles_non_positive_impacts(tmp_path):
    rows = pd.DataFrame({"q_over_v": [0.01, 0.01, 0.1], "impact_over_sigma": [-0.1, 0.2, 0.5]})
    p = plot_impact_law(rows, {"delta": 0.5, "Y": 1.2, "delta_ci": [0.3, 0.7]}, tmp_path / "i.png")
    assert p.stat().st_size > 1000
    p2 = plot_impact_law(pd.DataFrame({"x": [1]}), None, tmp_path / "e.png")
    assert p2.is_file()
