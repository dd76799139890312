"""Calibrate ``scenarios/stylized_facts.toml``: a random search scored on the stylized facts.

Usage::

    python benchmarks/calibrate_stylized.py search [--candidates 24] [--seeds 0,1] [--days 5]
        [--out calib] [--workers 2] [--search-seed 0] [--scenario scenarios/stylized_facts.toml]
    python benchmarks/calibrate_stylized.py check [--seeds 100-104] [--days 10] [--out calib]
        [--set KEY=VALUE ...]

``search`` draws ``--candidates`` points of :data:`SPACE` (a few population parameters, as
``key=value`` overrides of the scenario; candidate 0 is the scenario itself), runs each on every
seed for ``--days`` days with :func:`marketsim.sweep.run_sweep` (process pool, logs kept) and
scores each run with :func:`analysis.report.calibration_targets` at 1-minute sampling: the
score of a run is the number of targets met plus a soft closeness term in [0, 1) per missed
target; a candidate's score is its mean over the seeds (ties: the worst seed). It prints the
best candidates and writes every score to ``<out>/candidates.csv``.

``check`` runs the scenario (plus ``--set`` overrides) on fresh seeds with the full number of
days, one run at a time so that the timing is that of a lone run, and prints each seed's
target table and its wall time (``model.run`` and the whole ``marketsim run``-like pass with
recording). Fold the best candidate's overrides into the scenario file by hand, then ``check``.

What was tried (the record of the calibration; see also the scenario's comments). Numbers are
1-minute statistics of single runs unless said otherwise:

1. The quickstart market (noise, value, two market makers, momentum; OU fundamental with
   sigma = 0.01 $/sqrt(s)): rho(1) ~ 0.5 - the price follows the fast fundamental with a lag of
   minutes (the mispricing keeps an autocorrelation of 0.9 after 60 s), so returns trend;
   excess kurtosis < 1, Hill index > 5.
2. A 5x smaller fundamental volatility: rho(1) ~ 0.1 but rho(2) ~ 0.2 (the price oscillates
   around the value with a ~1 h period) and the 1-min volatility falls below a tick.
3. Chartist-fundamentalist ``switching`` traders waking once a minute with a slow trend EWMA:
   rho(1) ~ 0.45 (minute-scale trend chasing). Waking every 3-10 s and chasing the last move
   moves most of the feedback inside one 1-min return.
4. Herding without a restoring force ran away on some seeds (bubbles of $30+, empty book
   sides); position limits alone did not stop it. Added Lux-Marchesi's fundamentalist-profit
   term ``mispricing_weight * |F - m|`` to the switching rule (agents/background/switching.py,
   default 0 = unchanged): bubbles burst.
5. Identical fundamentalist thresholds made all fundamentalists fire together and blow through
   the book (isolated 15-20 sigma returns: kurtosis > 100 from two points, |r| ACF ~ 0 beyond
   lag 1). Per-agent thresholds, chartist thresholds and order sizes drawn from distributions
   fixed that; fewer (15), faster (every 3 s) switching traders gave real clustering: |r| ACF
   0.36 / 0.29 / 0.22 at lags 1 / 10 / 50 on fresh seeds.
6. First random search (24 candidates, 5 days x 2 seeds) chose herding 0.5, switch rate
   0.003, mispricing 0.2, performance 0.25, thresholds U(1.4, 5.7): all seven fact targets on
   four fresh 10-day seeds - but the impact law was convex (delta ~ 1.6): fundamentalists
   trading a fixed size whenever beyond their threshold absorb a meta-order at a nearly
   constant price until their position limits are used up, then the price runs away.
7. Added position targets to fundamentalists (``position_per_tick``: |target| grows linearly
   with the mispricing beyond the threshold; default 0 = unchanged). With thresholds spread
   over U(0.5, 30) ticks the latent liquidity grows linearly away from the value and the
   impact law became concave: delta = 0.56 [0.42, 0.74] (4 seeds x 6 sizes). Market makers
   absorb less (inventory skew 0.02 tick/lot, limit 1000 lots) so that they do not make the
   small-size impact linear.
8. Second random search (all switching fundamentalists with position targets, 28 candidates):
   facts and impact pulled apart - the best fact candidates had delta ~ 1.1 (more chartists
   chase the meta-order's own trend, a convex contribution), the concave variant of step 7
   lost the volatility clustering (|r| ACF 0.13 at lag 1, ~0 at lag 5).
9. Split the two roles: the ``switching`` group of step 6 (fast, fixed-size fundamentalists:
   the dynamics) plus a ``value_investors`` group of switching traders that never switch
   (position targets, thresholds U(0.5, 30): the latent liquidity). Third random search
   (the first 12 keys of :data:`SPACE` below, 20 candidates) chose the shipped values (its
   candidate 13). The institutional keys were added in step 11.
10. Result on fresh seeds (``check --seeds 200-204``, 10 days each): every seed passes excess
    kurtosis (19-67), no autocorrelation at lags 2-50 (max |rho| 0.033-0.050), |r| ACF at lag
    1 (0.17-0.26), Hill index (2.9-3.1) and volume-volatility (0.55-0.75); the slow |r| decay
    passes on 4/5 seeds and trade-sign long memory on 3/5 (C(1) ~ 0.4-0.5, but the share of
    significant lags out of 100 is 40-60 %: signs are persistent over seconds, not long-range).
    Impact (8 seeds x 1000-32000 lots, TWAP over one hour): delta = 0.68 [0.50, 1.53]
    (binned fit) / 0.63 [0.43, 0.87] (per meta-order fit). ``model.run`` of ten days: 27-37 s
    on the shared 2-core machine (load 1-1.5); ``marketsim run`` with plots: 34 s.
11. Trade-sign memory of step 10 came from the switching traders alone: their signs are
    persistent for ~30 trades, then anti-correlated over lags ~30-85 (chartist runs followed by
    fundamentalist reversals, C(50) ~ -0.07 on seed 7), so half the lags 1-100 were not
    significant. Added the ``institutional`` trader (agents/background/institutional.py): it
    idles for an exponential time, then works a meta-order of Pareto-distributed size (tail
    alpha, min, cap) as small child market orders - the Lillo-Mike-Farmer mechanism,
    ``C(l) ~ l^-(alpha - 1)``. Four agents, alpha = 1.5, 40-4000 lots, 2-lot children every
    3 s: institutional children were 23 % of the signs and added a flat ~+0.03 to C(l), not
    enough against the -0.06 of the switching traders. 1-lot children every 1.5 s
    (``wake_rate_per_hour = 2400``, idle 5 min): 42 % of the signs, a +0.07-0.10 contribution
    to C(l) decaying slowly, and the switching traders' share fell from 51 % to 29 %: 100 % of
    lags 1-100 significant on every seed, gamma 0.27-0.66. 1-lot children hardly move the
    price (3-lot children lost the sign memory again: fewer of them, more switching trades).
    ``model.run`` grows by ~10 % (fills are read off the agent's position, not through the
    exchange's per-fill notifications: those cost +40 %).
12. The slow |r| decay stays the weakest fact: ``|r|`` ACF at lag 10 is 0.01-0.09 depending
    on the seed. Slower switching (``switch_rate`` 0.0015) passed it on all six seeds below
    but pushed the lag 11-18 return autocorrelation just past the 0.05 tolerance on two
    (-0.051, -0.052); 0.002 failed the decay on three. Kept 0.003.
13. Impact: fresh studies show the impact law is not calibrated, with or without the
    institutional traders. ``marketsim impact scenarios/stylized_facts.toml --seeds 0-7``
    (default sizes 1000-20000 lots, TWAP over one hour) gives mean ``I*/sigma`` 0.007, 0.007,
    0.031, 0.068, 0.127: noise-dominated below ~5000 lots (std 0.02-0.04 per meta-order:
    the runs with and without the meta-order share one random stream, which diverges), then
    nearly linear. Fits: binned (the CLI's choice) delta = 1.38 [0.59, 2.18]; per meta-order
    0.66 [0.41, 0.92], which drops the 9 of 40 rows with ``I* <= 0`` and so leans concave.
    The step-10 scenario without institutional traders, same command: binned 0.71 [0.36,
    1.56], per meta-order 0.45 [0.17, 0.75]. Who absorbs a buy meta-order (positions with
    minus without it, 1-h TWAP): at 5000 lots noise traders 29 %, switching fundamentalists
    39 % (a wall at their 1.4-5.7 tick thresholds, capped at 15 x 500 lots), value investors
    5 %; at 30000 lots value investors 55 %. A fixed-capacity wall near the value makes the
    curve convex; the value investors' latent book is centred on the value, not on the
    current price, so where the price already sits away from the value it answers linearly.
    Cutting the wall (switching and value traders capped at 150-250 lots) and a denser latent
    book (20-25 value investors, 300-400 lots per tick) brought delta to 0.63-0.76 on quick
    studies (6 seeds, 4000-60000 lots) but failed the slow |r| decay on 2 of 6 seeds. Not
    shipped: a square-root law needs latent liquidity that follows the current price.
14. Result on fresh seeds (``check --seeds 7,200-204``, 10 days each): all seven targets on
    seeds 7, 200, 202, 203 and 204; seed 201 fails only the slow |r| decay (its |r| ACF dips
    to <= 0 at a lag in 1-10). Excess kurtosis 8-93, max |rho(k)| 0.033-0.060 (within
    tolerance), |r| ACF at lag 1 0.20-0.38, Hill index 2.3-3.0, volume-volatility 0.56-0.63,
    trade-sign gamma 0.27-0.66 with C(1) 0.19-0.24 and 100 % of lags 1-100 significant.
    ``model.run``: +10 % (two days alone: 6.5 s vs 5.9 s before); ten days took 70-120 s
    while other engineers loaded the 2-core machine (load 4-6).
15. A latent book that follows the price (agents/background/switching.py, both default off):
    ``anchor = "ema"`` makes fundamentalists trade against ``A = w F + (1 - w) E``, ``E`` an
    EMA of the mid with half-life ``anchor_halflife_s`` (``alpha = 1 - 2^(-dt/H)`` per wake);
    ``unwind = true`` makes their position a demand curve of the mispricing (they trade back
    to 0 as it shrinks; before, a position stayed until the mispricing crossed the threshold
    on the other side, so past excursions left the latent book used up). Quick impact studies
    (per-agent random streams, seeds 0-3, 1-h TWAP; mean ``I*/sigma`` at 1000 / 4000 / 16000
    lots unless said otherwise; delta with its 95 % CI):

    * value investors on an EMA (H = 2 h, w = 0.3), nothing else changed (5 sizes
      1000-20000): ``I*/sigma`` -0.03, -0.01, 0.01, 0.12, 0.27: delta 2.13 [0.51, 2.86]: the
      switching fundamentalists (15 x 500 lots within 1.4-5.7 ticks of F) and the value traders
      (10 x 500 lots, 3-tick edge) absorb ~10000 lots at a nearly constant price;
    * + H = 4 h, 300 lots/tick, switching and value traders capped at 200 lots: 1.04
      [0.56, 1.67];
    * unwind, H = 2 h, 200 lots/tick, caps unchanged (500): -0.01, 0.02, 0.38: 1.28
      [0.66, 2.88] (the walls again);
    * unwind, caps 150: 0.05, 0.19, 0.71: 0.95 [0.57, 1.49] (linear: the latent book too thin
      against the noise traders' order flow, which moves the price ~linearly);
    * unwind, H = 4 h, 500 lots/tick, caps 150: 0.10, 0.30, 0.68: 0.68 [0.36, 1.23]. Facts (10
      days): seeds 200-202 all seven; seed 7 failed the Hill index (1.78: tails too heavy);
    * as above with value investors waking 300/h instead of 600/h (shipped): 0.13, 0.32, 0.68:
      0.60 [0.31, 1.02]; facts: all seven on seeds 7, 200, 203, 204.

    Side effects: 1-minute ``rho(1)`` is now -0.3 to -0.46 (the price overshoots and comes
    back within a minute; lag 1 is not a target, lags 2-50 stay within tolerance); the Hill
    index of seeds 7 and 203 sits near the lower edge (2.05-2.12); volatility falls (daily
    sigma ~0.0035-0.0038 vs ~0.0055); ``position_per_tick`` and the value investors' wake rate
    ranges of :data:`SPACE` were moved around the new values.
16. Result (commit bf8d7cb, per-agent random streams, plus this change): ``marketsim impact
    scenarios/stylized_facts.toml --seeds 0-7`` (1000-20000 lots): mean ``I*/sigma`` 0.09,
    0.13, 0.24, 0.39, 0.71 (std 0.07-0.33; 6, 8, 8, 7, 8 of 8 positive): delta = 0.68 [0.48,
    0.91] (binned), 0.63 [0.44, 0.81] per meta-order (3 of 40 dropped); the local slope is
    ~0.6 below 5000 lots and ~0.8 above. ``check --seeds 7,200-204``: all seven targets on all
    six seeds; excess kurtosis 27-62, max |rho(k)| (k = 2..50) 0.058-0.106, each within its
    tolerance, |r| ACF at lag 1 0.32-0.51 and at lag 10 0.12-0.28, Hill index 2.05-3.89
    (seeds 7 and 203 near the edge: 2.12, 2.05), volume-volatility 0.48-0.70, trade-sign
    gamma 0.07-0.13 with 100 % of lags significant. ``model.run`` 33-47 s with two checks
    running side by side; ``marketsim run`` of seed 7 alone on the idle machine: 40 s.

17. Verification on further fresh seeds (commit d58faf5): ``check --seeds 300-303`` gives 7/7 on
    300 and 301, but the Hill index is 1.93 (302) and 1.43 (303), below 2; ``marketsim impact
    ... --seeds 8-15`` fits delta = 1.27 [0.87, 2.07] (binned; mean I*/sigma 0.02, 0.06, 0.15,
    0.49, 0.74 at 1000-20000 lots, the small sizes dominated by noise). Neither the tail index
    nor the impact law is robust across seed sets yet.
18. Why the tail index swings (seeds 300-303 of step 17): the pooled 1-minute returns mix the
    switching traders' phases, and the calm days were too calm - daily 1-minute volatility
    0.5-0.7 bp (half a tick) on calm days against 3-4.5 bp on turbulent ones. Top-5 % Hill on
    such a mixture is 1.4-1.9 when a run has a few turbulent days, and near 5 (with half-tick
    ties) when it has almost none. The largest returns are 30-70-tick flashes that revert
    within a minute: the market makers widen with the volatility they measure
    (``vol_spread_mult``), a wide spread makes the mid jump, and the jumps feed the volatility
    they measure. Trials on seeds 400-405 (10 days; Hill per seed):

    * switching traders' clip 10 lots instead of 16.7: 1.80 - 6.63 (two seeds fail);
    * noise ``market_prob`` 0.3 instead of 0.2 (a floor under the calm days' volatility:
      1.0-1.7 bp): 2.06 - 3.95, all seven facts on all six seeds;
    * ... plus ``vol_spread_mult`` 1.5: 2.05 - 4.67, but the lag 11-21 autocorrelation passes
      its tolerance on two seeds; ... plus market makers requoting every second: 1.35 - 3.93.

    Shipped ``market_prob = 0.3``. ``check --seeds 300-303``: all seven on 301-303, seed 300
    (calm) has Hill 5.27 > 5; with seeds 400-405, 9 of 10 seeds meet all seven targets. Seed 7:
    7/7, Hill 2.09. ``marketsim run`` of the ten days: 39 s. Impact (``marketsim impact
    ... --seeds 0-7`` and ``--seeds 8-15``): delta = 0.89 [0.59, 1.49] and 0.91 [0.65, 1.32]
    (binned), 0.82 [0.61, 1.03] and 0.73 [0.52, 0.95] per meta-order: the same law on both
    seed sets now (step 17: 0.68 and 1.27), but too close to linear.
19. Impact experiments on top of step 18 (seeds 8-15, default sizes; binned delta):

    * smaller child orders (``--interval-s 5`` instead of 30, so 20000 lots go as 28-lot
      children, below the top-of-book depth): 1.05 [0.74, 1.65] - the child size is not what
      makes the law linear;
    * averaging the impact over the last 1-10 minutes of the execution instead of reading it
      at the end (on step 17's scenario): the per-size means hardly move (0.02-0.03 at 1000
      lots) - noise at the end point is not the problem either;
    * value investors with 4x steeper demand curves (2000 lots per tick, cap 50000): 0.86;
      also waking 4x as often (they are rate-limited: ~17 lots per wake): 0.91; waking 4x as
      often with the old slope: 1.31;
    * switching and value traders capped at 50 lots (a smaller wall near the value): 1.08;
    * the ``latent_liquidity`` trader (agents/background/latent.py) in place of the value
      investors: the same demand curves (thresholds U(0.5, 30) ticks, 500 lots per tick, cap
      6000, EMA half-life 4 h) kept as resting limit orders, a V-shaped book around the
      anchor: 0.90, with the F-anchored walls capped at 50 lots 0.76 and with 1000 lots per
      tick 0.63 [0.39, 0.97] - concave, and the small meta-orders no longer buried in noise -
      but the V-shaped book pins the price to its slow anchor: daily volatility falls from
      0.3 % to 0.05-0.16 %, so the facts cannot hold (1-minute moves below a tick). Anchored to
      the fundamental instead (weight 0.5 or 1), the volatility comes back (0.13-0.43 %) and
      the law is linear again (1.01, 0.87) - the cap (6000 lots, 6 ticks of curve) flattens the
      V beyond 6 ticks; uncapped (30000 lots, 40 levels shown): 0.71 [0.45, 1.21] (weight 0.5)
      and 0.57 [0.38, 0.87] (weight 1), but then the price trails the fundamental: on seeds
      400-405 the 1-minute returns are autocorrelated (rho(2) up to 0.2), the tail index is
      1.0-1.5 (the fundamental's jumps) and no seed meets more than 6 of the 7 facts.
      Half-lives of 30 min and 1 h on the mid's EMA still pin the price (daily volatility
      0.05-0.12 %; delta 0.64 and 1.00).

    Who absorbs the meta-order in the shipped scenario (positions with minus without it at the
    end of the 1-h TWAP, seeds 8 and 9): the value investors take 80-94 % at 2000 lots and
    63-91 % at 20000 lots; noise traders, value traders and switching fundamentalists the rest. So the law is the value investors'
    demand curve read at the current price - and the current price sits typically tens of
    ticks from their 4-h EMA anchor (the price's own excursions), where the curve's slope is
    already ``500 n(theta < |gap|)`` lots per tick: the meta-order meets a non-vanishing
    marginal liquidity, so the impact is linear until it has moved the price by more than the
    gap. A square-root law needs the latent book to vanish linearly *at the current price*,
    whatever the price did before - the stationary state of the LLOB (Donier et al. 2015),
    where latent orders' reservation prices diffuse on their own and are consumed when the
    price crosses them. Neither a common anchor (a slow EMA pins the price; the fundamental
    makes it trail the value) nor fixed offsets from it give that.

    A first prototype of that process (not kept): one agent holding 12000 latent orders of 25
    lots per side (far density 5000 lots per tick, depth sqrt(D / nu) = 20 ticks, lifetime
    4 h), diffusing every 5 s and re-deposited when cancelled or used. Revealed as IOC orders
    when the price crossed them, they did not absorb the meta-orders (the bids they hit were a
    few lots deep; 305000 lots sent, 8700 filled): delta 1.01, 58 bp at 20000 lots. Revealed as
    resting limit orders at their reservation prices (10-min lifetime), they piled up on both
    sides of a one-tick spread and froze the price (daily volatility 0.01 %). The LLOB's
    annihilation of crossing buyers and sellers, rather than resting or giving up, is the part
    still to model.

    Open: a latent-order process in the LLOB spirit - reservation prices that each diffuse,
    are deposited and cancelled at fixed rates and are executed (as market orders or resting
    orders at the touch) when the price crosses them - whose density near the price is then V
    shaped in the price's own frame, without a restoring force towards any anchor.
20. The ``latent_orders`` trader (agents/background/latent_orders.py) and a warmed-up impact
    study. Two findings first:

    * the impact after a meta-order *grew* in the step-18 scenario (``decay_1`` 1.36 at 20000
      lots: the value investors keep the inventory they took and their EMA anchor follows the
      price); a POV study (10 %) read its impact at the end of its window, not when it was
      filled - fixed (``done_step``; the row's ``end_step`` and ``duration_s`` are the fill
      that completed it): POV gives delta 0.81 [0.57, 1.22], the same near-linear law;
    * day 0 starts from an empty book with every slow average at the initial price, and an hour
      after the open nothing has relaxed: studies now run on day 1 by default
      (:func:`analysis.experiments.default_day`). On the step-18 scenario that changes little
      (delta 1.08 on seeds 8-15), but a latent book needs the time to form.

    ``latent_orders`` (one agent per population): latent orders of ``order_lots`` deposited
    uniformly within ``band_ticks`` of the mid on either side, each replaced after an
    exponential ``lifetime_s``, shown at their level within ``reveal_ticks`` of the touch and
    taken with IOC orders once the price has crossed them; fills consume the orders they came
    from (``consumed_lots`` equals the lots traded - a test). Measured here (seed 8, day 1): with
    10000 orders the book 1-2 ticks from the mid is ~1.5x deeper than without them, and the latent
    agent trades 4000 (10000 orders) to 8000 (20000) lots a day, 2-4 % of the volume: Q* = J T ~
    1000 lots
    for a one-hour meta-order: the LLOB's fast regime for the sizes studied. Impact (binned
    delta, default sizes 1000-20000 lots, TWAP over an hour, day 1):

    * 10000 orders of 10 lots, 150 ticks, life one trading day, reveal 3, waking every 2 s:
      0.62-0.67 [0.50, 0.93] on seeds 8-15 (two implementations) but 0.78 with the final one;
      5000 orders of 20 lots waking every 5 s: 0.80; a three-day life: 0.76;
    * 20000 orders (shipped): 0.56 [0.43, 0.79] on seeds 8-15, 0.81 [0.57, 1.34] on seeds 0-7,
      0.66 [0.53, 0.87] pooled over seeds 0-15 (mean ``I*/sigma`` 0.13, 0.17, 0.37, 0.57, 0.86;
      median ``decay_1`` 0.83-0.88 from 2000 lots up: the impact now decays);
    * with the value investors' slope cut to 100 lots per tick (they trade 70000-105000 lots a
      day, a linear absorber): 0.73 on seeds 0-7 but 1.02 on 8-15, pooled 0.85 - kept at 500.

    The binned fit over 8 seeds moves by +-0.15 between seed sets: the chaotic divergence of the
    runs with and without the meta-order puts a std of ~0.15 sigma on each meta-order's impact,
    as large as the mean at 1000 lots. Quote delta over 16 seeds or more.

    Facts (``check``, 10 days) with 20000 latent orders on seeds 7, 300-303, 400-405: all seven
    on 7 of 11 seeds (7, 302, 303, 400, 402, 403, 404; before: 9 of 10). The latent book damps
    the calm runs further: excess kurtosis 0.01-2.70 on seeds 300, 301, 401 and 405 (their |r|
    ACF also dips below 0 before lag 10 on 300 and 405); on the others kurtosis 3.98-13.5, Hill
    2.75-4.77, |r| ACF at lag 1 0.16-0.30, volume-volatility 0.11-0.50. What did not bring the
    calm seeds' kurtosis back (seeds 300 and 405 or 301): fundamental jumps 4x as often, herding
    weight 0.6, faster switching (0.005), noise order sizes with log-std 1.2 or 2 % round lots of
    100 lots, market makers widening faster (``vol_spread_mult`` 3), latent orders shown only at
    the touch (``reveal_ticks`` 0; worse: Hill 6-10), latent orders deposited from 5 ticks out
    instead of half a tick (a trial parameter, not kept: kurtosis 0.40 on seed 300). A concave
    impact compresses large moves, so the turbulence that makes the tails has to come from
    outside the latent book.
21. Attention: the noise traders' market-order share scaled by ``(recent / usual volatility)^e``
    (``vol_feedback``, agents/background/noise.py; EMAs of ``|dmid| / sqrt(dt)`` with half-lives
    5 min and one trading day, capped at 0.9), a self-exciting order flow that clusters
    volatility in every run, herding or not. Facts on seeds 7, 300-303, 400-405 (these runs
    started the two averages from 0 instead of the first move, a transient of a few minutes):

    * e = 1: kurtosis 19.9 and 13.8 on the calm seeds 300 and 405, but |r| ACF(1) 0.67 and
      rho(2) -0.135: too much;
    * e = 0.5: seeds 300 and 405 7/7, but on the turbulent seeds |r| ACF(1) 0.60-0.65 (303, 400,
      401) and rho(k) just past its tolerance (7, 403): 6 of 11;
    * e = 0.25: 6 of 11 (kurtosis 0.9-2.9 on 300, 401, 405);
    * e = 0.35: 9 of 11 - seed 300 kurtosis 2.23, seed 402 rho(34) 0.0779 against a tolerance
      of 0.0773; kurtosis 4.3-17.6 elsewhere, Hill 2.17-3.56, |r| ACF(1) 0.35-0.54;

    but the impact law goes back toward linear: ``marketsim impact ... --seeds 0-15`` with
    e = 0.35 (and the averages started from the first move) gives delta 0.85 [0.71, 1.14]
    (mean ``I*/sigma`` 0.07, 0.08, 0.26, 0.60, 0.90): the volatility a meta-order causes draws
    more market orders too, so the market amplifies large meta-orders. Not shipped
    (``vol_feedback`` stays 0 in the scenario); the parameter is kept, tested and off by
    default. Facts and a concave law together need the attention to respond to something a
    meta-order does not drive, or the latent book to grow with the volatility.
22. Exogenous activity (agents/background/activity.py; noise ``activity_sigma``): a market-wide
    activity multiplier ``A(t)``, lognormal with mean 1, its log a sum of three OU components
    (half-lives 10 min, 1 h, one trading day), drawn once per run from a stream of its own
    (``MarketModel.shared_stream``), so a run with a meta-order sees the same ``A`` as its
    counterfactual: news and attention that the meta-order does not create. Facts (``check``,
    10 days), log-std 0.7 unless said:

    * ``A`` on the noise traders' wake-up rate (``activity_on = "rate"``, 0.8): kurtosis 0.50
      and 0.25 on the calm seeds 300 and 405 (no better than without), volume-volatility -0.02
      on 300: the bursts bring as much new liquidity as they take;
    * ``A`` on their market-order share (``"market_prob"``; 0.3 A, at most 0.9), 0.8: seeds 300
      and 405 7/7 (kurtosis 15.8 and 4.3), |r| ACF(1) 0.58 on 300 - near its ceiling;
    * 0.7 (shipped): all seven targets on 10 of the 11 seeds 7, 300-303, 400-405 (405: kurtosis
      2.87) and on 4 of the 6 fresh seeds 500-505, kurtosis 2.87-18.4, Hill 2.00-4.61, |r|
      ACF(1) 0.37-0.59, volume-volatility 0.50-0.66. The two fresh failures were
      ``no_autocorrelation_beyond_lag_1`` at lags 31-33 (|rho| 0.071-0.078 against
      tolerances 0.066-0.068). Over the 17 runs the mean rho(k) is 0.00 +- 0.01 at every lag
      2..50 (no real correlation) but rho(k)/se_k scatters with std 1.15, not 1: the robust
      s.e. was that of a white-noise null, while the test's null allows the lag-1 bounce
      (rho(1) ~ -0.4), which widens the scatter by Bartlett's sqrt(1 + 2 rho(1)^2) = 1.15 - a
      5 %-level test that rejected a true null on about one seed in five. Fixed in
      :func:`analysis.report.robust_acf_se` (``null_lags = 1``; a size test on synthetic
      MA(1) returns in tests/analysis/test_report.py): 15 of the 17 seeds meet all seven (405:
      kurtosis 2.87; 502: rho(31) 0.078 against 0.076), with the common 4-h anchor below.

    Impact with the activity (``marketsim impact ... --workers 2``, default sizes, TWAP over one
    hour on day 1, binned delta): seeds 0-15 0.79 [0.61, 1.06] (mean ``I*/sigma`` 0.10, 0.17,
    0.31, 0.61, 0.88; without the activity 0.13, 0.17, 0.37, 0.57, 0.86 - the same within the
    noise), seeds 16-31 0.96 [0.58, 1.59] (0.03, 0.09, 0.23, 0.42, 0.68), pooled over 0-31 0.87
    [0.68, 1.24]. The step-20 figure of 0.66 on seeds 0-15 was a favourable seed set: the law
    is nearer 0.75-0.9, above the target. What does not change it (seeds 0-15 with the
    activity; weighted or per-row fits of the same studies agree within 0.1):

    * the execution protocol: 15-min TWAP 0.80, 4-h TWAP 0.70 [0.49, 1.16] (the impact at
      20000 lots is the same, 0.83, whatever the duration), POV at 15 % 0.85 [0.71, 1.11];
    * 40000 latent orders: 0.89 (the small meta-orders' impact falls: the revealed latent
      orders add liquidity at the touch); latent orders shown only at the touch: 0.89;
    * half the noise traders: 0.81; value-investor thresholds from 5 ticks instead of 0.5:
      0.76;
    * value investors with anchors on many time scales (Benzaquen & Bouchaud 2018:
      liquidity with a broad spectrum of memory times gives a square root):
      ``anchor_halflife_s`` lognormal with mean 40000 s and log-std 1.5 (median 3.6 h): 0.65
      [0.51, 0.87] on seeds 0-15, 0.92 on 16-31, pooled 0.75 [0.61, 0.95] - better by ~0.1,
      but seed 7 then fails the no-autocorrelation target (rho(6) = -0.098; the fast anchors
      revert the price within minutes); median 45 min (mean 20000 s, log-std 2): 0.89 on
      16-31; each investor drawing one of 1, 2, 4, 8 or 16 trading hours (shipped): 0.73
      [0.58, 1.07] on seeds 0-15 (mean ``I*/sigma`` 0.10, 0.10, 0.28, 0.55, 0.88), 0.80
      [0.64, 1.19] on 16-31, pooled 0.76 [0.65, 0.97] (0.08, 0.10, 0.27, 0.50, 0.82); the
      per-meta-order std of ``I*/sigma`` also falls, from 0.14-0.33 to 0.11-0.27. Facts with
      it (``check --seeds 7,300-303,400-405,500-505``): all seven targets on all 17 seeds -
      kurtosis 5.1-20.3, Hill 2.09-3.50, |r| ACF(1) 0.40-0.57, volume-volatility 0.54-0.67,
      sign gamma 0.06-0.13; ``marketsim run`` of seed 7: 53 s.

    Why small meta-orders move the price so little (positions with minus without a 2000-lot
    meta-order at its end, seeds 0-5): the noise traders absorb up to 1800 lots with the mid
    unchanged - zero-intelligence limit orders refill the book at the touch whatever the flow
    - and the value investors, whose V-shaped demand is centred on their slow anchor rather
    than on the price, offer ``500 n(theta < |gap|)`` lots per tick at the current price: both
    are linear absorbers for small flows, so the impact of 1000-2000 lots is 0.03-0.13 sigma
    where a square root through the large sizes would give ~0.2.

    A lead from that: noise limit orders placed deeper (``depth_mean_ticks`` 6 instead of 3, a
    thinner touch) on top of the shipped scenario give 0.76 [0.58, 1.08] on seeds 0-15, 0.62
    [0.49, 0.80] on 16-31, pooled 0.69 [0.57, 0.84] (mean ``I*/sigma`` 0.10, 0.14, 0.31, 0.50,
    0.77) - but the calm seed 405 loses its tails (kurtosis 1.69; seeds 7 and 300 keep all
    seven). With a stronger activity path to go with it (log-std 0.9) all seven facts hold on
    all 17 seeds (kurtosis 3.35-16.2, |r| ACF(1) 0.38-0.598 - at the ceiling), but the impact
    law over seeds 0-31 turns convex at small sizes (mean ``I*/sigma`` 0.05, 0.09, 0.27, 0.46,
    0.73; binned delta 1.6, CI [0.68, 1.54]): the stronger bursts bury the small meta-orders.
    Neither variant is shipped.
23. Aligned counterfactuals (commit 34667dd). An impact study compares a run with the
    meta-order and one without it; both share every trader's own random stream, but a trader
    whose number of draws depends on the book loses the alignment as soon as the books differ.
    An hour into a 1000-lot meta-order (seeds 0 and 1), 88-95 of the 100 noise traders (an
    extra draw for an order inside a wide spread), 6-8 of the 10 value traders (early returns
    before their draws) and the latent book (deposits as many as the fills emptied) had parted
    from their counterfactual: from then on the two runs differed by a random market, not by
    the meta-order. Now the noise and value traders draw a fixed block per wake and the latent
    orders' deposits are counter-based (SplitMix64 of the key, the slot, the order and its
    deposit count); tests/agents/test_stream_alignment.py checks that one extra order leaves
    every stream aligned (it fails on the old value trader). The std of one meta-order's
    ``I*/sigma`` at 1000 lots falls from 0.16 to 0.06.

    The law the noise had hidden (``marketsim impact ... --seeds 0-15`` and ``16-31``, default
    sizes, binned): mean ``I*/sigma`` 0.046, 0.10, 0.29, 0.48, 0.78 - local slopes 1.1, 1.1,
    0.7, 0.7 - delta 0.88 [0.76, 1.07] and 0.95 [0.79, 1.24], pooled 0.93 [0.81, 1.08]. Linear
    up to ~5000 lots (2.5 % of the daily volume), concave above - like the LLOB's crossover
    from the linear to the square-root regime at ``Q* = J T`` (``J`` the liquidity renewed at
    the price while the meta-order runs), but the 15-minute trial below does not move it. Who
    absorbs 1000 lots (positions with minus without
    it at the end, seeds 0-3): noise traders -388..+316, switching fundamentalists 0..-1171
    (their walls near the value), value investors 6..-533, latent orders -40..-598 (fresh
    deposits next to the price) - several linear absorbers of similar size, none dominant.
    Trials on seeds 0-15 (delta 0.88 with the shipped scenario):

    * ``deposit_ramp_ticks`` (new, latent_orders: deposit density ``min(u / w, 1)``, so renewals
      do not refill the tip of the V) 20 with 40000 orders, before the alignment: 0.82;
    * ``inventory_scale_lots`` (new, noise: buy odds times ``exp(-2 x)``, ``x`` the inventory
      over the scale, so noise traders give back what they absorb) 30, before the alignment:
      0.81 (seeds 0-15), and with ``depth_mean_ticks`` 6 over seeds 0-31: 0.81;
    * ramp 20 + inventory 30 + depth 6, aligned: 0.86 [0.70, 1.20] (mean ``I*/sigma`` 0.056,
      0.12, 0.30, 0.52, 0.72);
    * a 15-minute TWAP (children every 7.5 s), aligned: 0.86 [0.74, 1.08] (mean ``I*/sigma``
      0.076, 0.19, 0.43, 0.71, 1.06): every size pays more, the shape stays - the crossover
      does not move with ``T`` as a renewal flow ``J T`` would, so the small-size absorbers are
      static on these time scales (walls and off-centre curves rather than renewal).

    Facts with the aligned streams (``check --seeds 7,300-303,400-405,500-505``; the same
    processes, other draws): all seven targets on 16 of 17 seeds - seed 401 fails "no
    autocorrelation beyond lag 1" at lag 2 (rho(2) = -0.121 against 0.114; over the 17 runs the
    mean rho(2) is -0.020 +- 0.013); kurtosis 3.4-19.5, Hill 2.05-4.85, |r| ACF(1) 0.40-0.58,
    volume-volatility 0.48-0.67, sign gamma 0.05-0.12.

    Open: a concave law from 1000 lots up needs the absorbers (noise traders' refills, the
    fundamentalists' walls, off-centre demand curves, deposits at the tip) to stop absorbing a
    slow one-sided flow at an unchanged price, without losing the facts they carry.
24. A deep latent book and the protocol of the empirical law. In the LLOB (Donier et al. 2015)
    a meta-order traded at rate ``m`` much slower than the market's volume rate ``J`` has impact
    ``~ (m / J) sigma sqrt(T)``: linear in ``Q`` at a fixed duration ``T`` - the one-hour TWAP of
    steps 15-23, where 1000-20000 lots are 3-66 % of the volume - and ``~ sqrt(Q)`` at a fixed
    participation (``T ~ Q``), the way the empirical square-root law's meta-orders are worked.
    Measured (seeds 0-7 unless said; all aligned):

    * the shipped scenario of step 23 with a 20 % POV (``--algo pov --participation 0.2
      --start-s 1800 --duration-s 19800``): 0.98 [0.79, 1.32], mean ``I*/sigma`` 0.045, 0.082,
      0.31, 0.64, 0.82 - the protocol alone does not do it: the latent book (667 lots a tick far
      from the price) is a minor absorber next to the linear ones;
    * 10 times the latent orders (200000 of 10 lots), 1-h TWAP: 0.97 [0.65, 1.41] - the daily
      sigma halves (25 to 10.5 ticks) and every size pays less, the shape stays; with the value
      investors' slope cut to 100 lots a tick: 0.70 [0.43, 1.15];
    * 10 times the latent orders with a 20 % POV: 0.57 [0.36, 0.85] (seeds 0-7); with 10 times
      the lots instead (order_lots 100, the run time unchanged): 0.76 [0.51, 1.30] (seeds 8-15);
    * + ``activity_sigma`` 0.9 (the deep book damps the bursts: with 0.7 the calm seed 405 had
      an excess kurtosis of 2.5) and the value investors at 100 lots a tick: 0.74 [0.57, 1.08]
      (seeds 16-23); the same with a five-day latent memory and 220-lot orders: 0.60 [0.40,
      0.94]; with 30 % POV instead: 0.64 [0.41, 0.92];
    * the five-day, 220-lot variant over seeds 0-31 (20 % POV): 0.34 [0.22, 0.46] - too flat:
      1000 lots already move the mid by 1.1-1.4 ticks (0.11 sigma) and 20000 by 3.5 (0.38
      sigma); with 30 % POV (seeds 0-15) 0.42 [0.27, 0.63]. All seven facts on all 17 check
      seeds (kurtosis 4.5-15.1, Hill 2.01-3.47).

    Shipped (``order_lots`` 100, one-day memory, ``activity_sigma`` 0.9, value investors 100
    lots a tick; ``marketsim impact`` defaults to a 20 % POV): ``marketsim impact
    scenarios/stylized_facts.toml --out DIR --seeds 0-31 --workers 2`` gives delta 0.51 [0.41,
    0.62] (seeds 0-15: 0.56 [0.44, 0.73]; 16-31: 0.46 [0.34, 0.62]), ``Y`` 1.3, mean
    ``I*/sigma`` 0.091, 0.148, 0.226, 0.283, 0.601 at 1000-20000 lots (``Q/V`` 0.7-15 %):
    slope ~0.5 up to 10000 lots, steeper at 20000 - those meta-orders run 3-5.5 hours, most of
    the latent book's one-day memory (the LLOB's renewed, linear regime), and 5 of 32 were
    still open at the end of their window (the rest sent as one market order).
    Facts (``check --seeds 7,300-303,400-405,500-505``): all seven targets on 15 of 17 seeds;
    the misses are the Hill index on either side, seed 403 at 5.13 (kurtosis 6.1) and seed 502
    at 1.58 (kurtosis 23.6, one extreme burst); kurtosis 3.3-23.6, |r| ACF(1) 0.42-0.55,
    volume-volatility 0.52-0.65, sign gamma 0.05-0.10. Seed 7: 53 s for the ten days.
    The same meta-orders as a one-hour TWAP (``--algo twap --start-s 3600 --duration-s 3600``,
    seeds 0-15): 0.81 [0.61, 1.14], mean ``I*/sigma`` 0.054, 0.094, 0.20, 0.38, 0.57 - against
    0.56 with POV on those seeds: at a fixed duration the small sizes, slow next to the volume,
    are in the LLOB's linear regime.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from analysis.report import calibration_targets  # noqa: E402
from marketsim.sweep import RUNS_DIR, parse_seeds, run_sweep  # noqa: E402

#: Search space: scenario key -> (low, high, kind); kind "lin", "log" or "int".
SPACE: dict[str, tuple[float, float, str]] = {
    "agents.switching.params.herding_weight": (0.3, 0.8, "lin"),
    "agents.switching.params.switch_rate": (0.001, 0.01, "log"),
    "agents.switching.params.mispricing_weight": (0.1, 0.4, "log"),
    "agents.switching.params.performance_weight": (0.0, 0.4, "lin"),
    "agents.switching.params.chartist_threshold_ticks.high": (1.5, 4.0, "lin"),
    "agents.switching.params.trend_alpha": (0.6, 1.0, "lin"),
    "agents.switching.params.size_lots.mean": (10.0, 25.0, "lin"),
    "agents.value_investors.params.wake_rate_per_hour": (150.0, 600.0, "log"),
    "agents.value_investors.params.position_per_tick": (250.0, 1000.0, "log"),
    "agents.noise.params.market_prob": (0.2, 0.4, "lin"),
    "agents.noise.params.size_sigma": (0.6, 1.2, "lin"),
    "agents.market_maker.params.vol_spread_mult": (1.0, 3.0, "lin"),
    "agents.institutional.params.wake_rate_per_hour": (1200.0, 3600.0, "log"),
    "agents.institutional.params.idle_mean_s": (120.0, 900.0, "log"),
    "agents.institutional.params.meta_min_lots": (10.0, 100.0, "log"),
    "agents.institutional.params.meta_tail_alpha": (1.3, 1.7, "lin"),
}
DEFAULT_SCENARIO = ROOT / "scenarios" / "stylized_facts.toml"


def draw(rng: np.random.Generator) -> dict[str, Any]:
    """One random point of :data:`SPACE`."""
    out: dict[str, Any] = {}
    for k, (lo, hi, kind) in SPACE.items():
        if kind == "log":
            v = float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
            out[k] = float(f"{v:.3g}")
        elif kind == "int":
            out[k] = int(rng.integers(int(lo), int(hi) + 1))
        else:
            out[k] = round(float(rng.uniform(lo, hi)), 3)
    return out


def closeness(row: pd.Series) -> float:
    """Soft credit in [0, 1) for a missed target: 1 / (1 + relative distance to its range)."""
    v, lo, hi = float(row["value"]), float(row["low"]), float(row["high"])
    if not math.isfinite(v):
        return 0.0
    d = lo - v if v < lo else v - hi if v > hi else 0.0
    scale = max(abs(lo) if math.isfinite(lo) else 0.0, abs(hi) if math.isfinite(hi) else 0.0, 0.1)
    return 0.99 / (1.0 + d / scale)


def score_targets(t: pd.DataFrame) -> float:
    """Targets met plus the soft credit of the missed ones."""
    return float(sum(1.0 if r["passed"] else closeness(r) for _, r in t.iterrows()))


def targets_of(run_dir: Path) -> pd.DataFrame:
    """Calibration targets of one run directory at 1-minute sampling."""
    return calibration_targets(run_dir, horizon="1min")


def search(args: argparse.Namespace) -> int:
    out = Path(args.out)
    sweep_dir = out / "sweep"
    rng = np.random.default_rng(args.search_seed)
    seeds = parse_seeds(args.seeds)
    cands = [{}] + [draw(rng) for _ in range(args.candidates - 1)]
    rows = []
    csv = out / "candidates.csv"
    out.mkdir(parents=True, exist_ok=True)
    for i, cand in enumerate(cands):
        t0 = time.perf_counter()
        df = run_sweep(
            args.scenario, {k: [v] for k, v in cand.items()}, seeds, "local",
            out_dir=sweep_dir, workers=args.workers, keep_logs=True, facts=False,
            overrides=[f"simulation.days={args.days}"],
        )  # fmt: skip
        scores, passes, vals = [], [], {}
        for _, r in df.iterrows():
            rd = sweep_dir / RUNS_DIR / r["run_id"]
            if r["status"] != "ok":
                scores.append(0.0)
                passes.append(0)
                continue
            t = targets_of(rd)
            scores.append(score_targets(t))
            passes.append(int(t["passed"].sum()))
            for _, tr in t.iterrows():
                vals.setdefault(tr["target"], []).append(float(tr["value"]))
            if not args.keep_logs:
                shutil.rmtree(rd, ignore_errors=True)
        row = {"candidate": i, **cand}
        row.update(
            score=float(np.mean(scores)), worst=float(np.min(scores)), passes=str(passes),
            wall_s=round(time.perf_counter() - t0, 1),
        )  # fmt: skip
        row.update({f"v.{k}": float(np.mean(v)) for k, v in vals.items()})
        rows.append(row)
        print(
            f"[{i + 1}/{len(cands)}] score {row['score']:.2f} (worst {row['worst']:.2f}, "
            f"passes {passes}) in {row['wall_s']} s",
            flush=True,
        )
        pd.DataFrame(rows).to_csv(csv, index=False)
    res = pd.DataFrame(rows).sort_values(["score", "worst"], ascending=False)
    with pd.option_context("display.width", 200, "display.max_columns", 50):
        print(res.head(5).T.to_string())
    best = res.iloc[0]
    print("\nbest overrides:")
    for k in SPACE:
        if k in best and pd.notna(best[k]):
            print(f"  --set {k}={best[k]}")
    return 0


def check(args: argparse.Namespace) -> int:
    from marketsim.model import MarketModel
    from marketsim.scenario import load_scenario
    from marketsim.summary import summarize, write_summary

    out = Path(args.out) / "check"
    seeds = parse_seeds(args.seeds)
    sc = load_scenario(args.scenario, [f"simulation.days={args.days}", *args.set])
    all_t = []
    for seed in seeds:
        rd = out / f"seed{seed}"
        if rd.exists():
            shutil.rmtree(rd)
        rd.mkdir(parents=True)
        t0 = time.perf_counter()
        m = MarketModel(sc, seed=seed, out_dir=rd)
        m.run()
        m.close()
        write_summary(summarize(m), rd / "summary.json")
        total = time.perf_counter() - t0
        t = targets_of(rd)
        t.insert(0, "seed", seed)
        all_t.append(t)
        print(
            f"seed {seed}: {int(t['passed'].sum())}/{len(t)} targets; model.run "
            f"{m.wall_seconds:.1f} s, build+run+write {total:.1f} s "
            f"(load average {os.getloadavg()[0]:.1f})",
            flush=True,
        )
        with pd.option_context("display.width", 200, "display.max_colwidth", 90):
            print(t[["target", "value", "passed", "detail"]].to_string(index=False), flush=True)
        m.release()
    res = pd.concat(all_t, ignore_index=True)
    res.to_csv(out / "targets.csv", index=False)
    summary = res.groupby("target", sort=False).agg(
        mean=("value", "mean"), min=("value", "min"), max=("value", "max"),
        passed=("passed", "sum"),
    )  # fmt: skip
    summary["of"] = len(seeds)
    print("\nover seeds:")
    print(summary.to_string())
    pooled = calibration_targets([out / f"seed{s}" for s in seeds])
    print("\npooled over the seeds:")
    print(pooled[["target", "value", "passed"]].to_string(index=False))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("search", help="random search over SPACE")
    s.add_argument("--scenario", default=str(DEFAULT_SCENARIO))
    s.add_argument("--candidates", type=int, default=24)
    s.add_argument("--seeds", default="0,1")
    s.add_argument("--days", type=int, default=5)
    s.add_argument("--out", default="calib")
    s.add_argument("--workers", type=int, default=2)
    s.add_argument("--search-seed", type=int, default=0)
    s.add_argument("--keep-logs", action="store_true")
    s.set_defaults(func=search)
    c = sub.add_parser("check", help="targets and timing of the scenario on fresh seeds")
    c.add_argument("--scenario", default=str(DEFAULT_SCENARIO))
    c.add_argument("--seeds", default="100-104")
    c.add_argument("--days", type=int, default=10)
    c.add_argument("--out", default="calib")
    c.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    c.set_defaults(func=check)
    args = p.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
