"""Keep FBR invoice posts and PayPal payout batches moving until each is done, exactly once."""
