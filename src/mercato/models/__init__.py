"""Predictive models: customer lifetime value (BG/NBD, Pareto/NBD, Gamma-Gamma) and more."""
