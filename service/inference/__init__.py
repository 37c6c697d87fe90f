"""The model at work: loaded once, run by one scorer thread, its scores calibrated to a scene."""
