"""Other workflow libraries' APIs, built on eddic's public API (``from eddic import ...`` only).

- :mod:`eddic.compat.edda`: the names Edda's tutorial *Your First Workflow* uses (``EddaApp``,
  ``workflow``, ``activity``, ``compensation``, ``on_failure``, ``WorkflowContext``,
  ``send_event_transactional``); see docs/edda.md.
"""
