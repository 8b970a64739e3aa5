"""``theta.sandbox``: Theano's module path for ``rng_mrg.MRG_RandomStreams``."""
