"""The service layer, usable without Dagster: the ops and sensors in ``defs/`` are thin calls
into it, and it has no SQL of its own (every query is a ``store`` function).

- ``pipeline/``: the shared core (claim, send concurrently, record each attempt);
- ``fbr/``: invoice retries (``retry``), operator actions (``admin``), ``intake``, ``seed``;
- ``paypal/``: recording a batch (``recording``, phase 1), submitting it (``retry``, phase 2),
  ``reconcile``, operator actions (``admin``);
- ``actor``: who acts and why, checked against the admin ids the caller passes in;
- ``status`` and ``maintenance``: across both queues.
"""
