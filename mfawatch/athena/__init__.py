"""The Athena backtest: the table and query SQL generated from the rule patterns (:mod:`.sql`),
the Athena edge (:mod:`.client`), and the same SQL proved on DuckDB offline (:mod:`.local`).
"""
