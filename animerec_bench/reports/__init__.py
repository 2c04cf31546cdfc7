"""Reports: leaderboards, plots and the regression gate, all rendered from result files."""
