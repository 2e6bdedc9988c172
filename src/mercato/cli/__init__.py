"""The command line; each module is a thin wrapper over library calls."""
