"""Results as tables, plots and reports."""
