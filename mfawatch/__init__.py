"""mfawatch's laptop toolkit (never deployed): replay, rule tooling, the Athena backtest."""
