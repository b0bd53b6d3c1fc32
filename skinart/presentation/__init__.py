"""How one run presents itself: the figures and markdown tables every run kind writes beside its metrics."""
