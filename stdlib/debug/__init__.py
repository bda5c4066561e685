"""Replaying a stored instance with the current code, step by step (``replay``), the divergence
report (``divergence``) and the timeline of its steps (``timeline``)."""
