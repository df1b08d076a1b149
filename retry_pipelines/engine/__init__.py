"""The service layer: claim, submit, record; two-phase payouts; admin actions; sweeps.

Usable without Dagster: the ops and sensors in ``defs/`` are thin calls into this package.
"""
