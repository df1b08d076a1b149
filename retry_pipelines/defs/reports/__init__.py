"""Report assets (daily retry metrics, error distributions, the backlog), their checks, the daily
reports schedule and the attempt-history retention job."""
