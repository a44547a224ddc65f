"""Memory-fed bench of the ``mpgemm`` core (``make bench``): the stimulus in simulated memories."""
