"""Pure decisions shared by live trading and the backtest: indicators, bars, entry signals, exit rules, risk and sizing."""
