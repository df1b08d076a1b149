"""Alert sensors: failed runs and failed asset checks of this code location, sent as signed
webhooks (see ``retry_pipelines.alerts``)."""
