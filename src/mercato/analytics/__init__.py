"""Analysis: functions from warehouse tables to small result tables, computed in the engine."""
