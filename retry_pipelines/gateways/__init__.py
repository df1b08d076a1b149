"""HTTP clients for FBR and PayPal: requests, response parsing and classification, tokens."""
