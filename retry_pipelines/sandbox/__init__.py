"""Local FBR and PayPal servers (real HTTP) with fault injection: demo, tests, benchmarks."""
