"""The exit manager's core: adoption, position state, exit orders, execution, reconciliation plan and actions."""
