"""Bench of the ``mpgemm`` core: stream drivers, result monitor and scoreboard (:func:`verif.sims.run_tiles`)."""
